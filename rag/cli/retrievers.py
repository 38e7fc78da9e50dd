"""`arag retrievers [show NAME]`: every retriever kind (built-in and plugin) with its settings."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from rag.cli.components_table import add_listing

    add_listing(sub, "retrievers", "retriever kinds", "bm25", run)


def run(args: argparse.Namespace) -> int:
    from rag.cli.components_table import print_detail, print_overview, warn
    from retrievers.base import RetrieverError
    from retrievers.specs import retriever_specs

    specs, problems = retriever_specs()
    warn(problems)
    if args.name is not None:
        if args.name not in specs:
            raise RetrieverError(f"unknown retriever kind {args.name!r} (use one of {', '.join(specs)})")
        spec = specs[args.name]
        print_detail(spec.name, [("searches", spec.where), ("what it is", spec.help),
                                 ("needs", f"the {spec.extra} extra" if spec.extra else "")], spec.settings)
        return 0
    print_overview("retriever kinds (--retriever NAME)", "searches", [(s.name, s.where, s.settings, s.help) for s in specs.values()])
    return 0
