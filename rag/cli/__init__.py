"""`arag`: the command line, the top floor of `rag`. Each built-in subcommand lives in
`rag/cli/<name>.py` with ``register(subparsers)``; this file only dispatches and turns user errors
into one line + exit 2. Heavy imports (torch, transformers, faiss) happen inside the commands, so
`arag --help` is instant.

More subcommands come from installed packages through the entry-point group ``adaptive_rag.commands``
(each entry a module with ``register(subparsers)``): that is how the benchmark commands (bench,
calibrate, study, in `benchmarks/cli/`) join, so `rag` never imports `benchmarks`. An entry whose
module fails to load is one line on stderr naming it; the other commands still work.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import EntryPoint, entry_points

COMMAND_MODULES = (
    "rag.cli.ask",
    "rag.cli.index",
    "rag.cli.corpus",
    "rag.cli.chat",
    "rag.cli.serve",
    "rag.cli.triggers",
    "rag.cli.retrievers",
)
COMMAND_GROUP = "adaptive_rag.commands"  # entry points of installed packages' subcommands


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line (`arag ask: error: ... (see arag ask --help)`), not argparse's usage
    block; `--help` keeps the full text. Subcommand parsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="arag", description="Adaptive retrieval-augmented generation: retrieve only when the model does not know.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        _register_entry(entry, sub)
    return parser


def _register_entry(entry: EntryPoint, sub: argparse._SubParsersAction) -> None:
    """Add an installed package's subcommand; a broken one is one line on stderr, not a failed `arag`."""
    try:
        entry.load().register(sub)
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party module must not stop `arag`
        print(f"arag: command {entry.name!r} ({entry.value}) is unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from rag.errors import USER_ERRORS

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"arag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arag: interrupted", file=sys.stderr)
        return 130
