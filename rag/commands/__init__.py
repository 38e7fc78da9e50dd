"""One module per `arag` subcommand."""
