"""Errors about input data that a user can fix; the CLI prints them as one line and exits 2."""


class CorpusError(ValueError):
    """A corpus file or folder is missing, unreadable or malformed (the message names file and line)."""
