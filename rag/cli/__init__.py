"""`arag`: the command line, the top layer. Each subcommand lives in `rag/cli/<name>.py` with
``register(subparsers)``; this file only dispatches and turns user errors into one line + exit 2.
Only this package imports `benchmarks` (bench, calibrate, study); nothing else in `rag` imports it
or the CLI. Heavy imports (torch, transformers, faiss) happen inside the commands, so `arag --help`
is instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "rag.cli.ask",
    "rag.cli.index",
    "rag.cli.corpus",
    "rag.cli.bench",
    "rag.cli.calibrate",
    "rag.cli.study",
    "rag.cli.chat",
    "rag.cli.serve",
    "rag.cli.triggers",
    "rag.cli.retrievers",
)


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
    return parser


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
