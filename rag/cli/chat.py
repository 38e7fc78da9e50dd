"""`arag chat`: an interactive terminal chat over a corpus or index with any trigger."""
from __future__ import annotations

import argparse

from rag.cli.common import add_pipeline_args, build_pipeline


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat in the terminal, retrieving only when the trigger fires",
                       description="Interactive multi-turn chat. Answers stream as they are accepted; after each "
                                   "answer a line shows whether retrieval fired, the trigger score and the sources. "
                                   "Commands: /sources, /reset, /trigger NAME, /help; Ctrl-D exits. "
                                   "With no --index/--corpus the shipped demo corpus is used.")
    add_pipeline_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.apps.chat import ChatSession, run_chat

    pipe = build_pipeline(args)
    return run_chat(ChatSession(pipe))
