"""`arag`: the command line. Each subcommand lives in `rag/commands/<name>.py` with
``register(subparsers)``; this file only dispatches and turns user errors into one line + exit 2.
Heavy imports (torch, transformers) happen inside the commands, so `arag --help` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "rag.commands.ask",
    "rag.commands.index",
    "rag.commands.corpus",
    "rag.commands.bench",
    "rag.commands.calibrate",
    "rag.commands.study",
    "rag.commands.chat",
    "rag.commands.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arag", description="Adaptive retrieval-augmented generation: retrieve only when the model does not know.")
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


if __name__ == "__main__":
    sys.exit(main())
