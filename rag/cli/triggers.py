"""`arag triggers [show NAME]`: every trigger (built-in and plugin) with its cost and settings."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from rag.cli.components_table import add_listing

    add_listing(sub, "triggers", "triggers and their costs", "token-confidence", run)


def run(args: argparse.Namespace) -> int:
    """The overview lists every trigger that loads; a broken plugin is one warning line (exit 0),
    and `show` of a broken or unknown one is its one-line error (exit 2)."""
    from rag.cli.components_table import print_detail, print_overview, warn
    from triggers.base import TriggerConfigError
    from triggers.registry import clashing_plugins, get_spec, trigger_names

    if args.name is not None:
        spec = get_spec(args.name)
        print_detail(spec.name, [("cost", spec.cost), ("what it reads", spec.help),
                                 ("needs", f"the {spec.extra} extra" if spec.extra else "")], spec.settings)
        return 0
    rows, problems = [], clashing_plugins()
    for name in trigger_names():
        try:
            spec = get_spec(name)
        except TriggerConfigError as exc:
            problems.append(str(exc))
            continue
        rows.append((name, spec.cost, spec.settings, spec.help))
    print_overview("triggers (combine with a+b, a&b, -a, cascade:A,B, learned:PATH)", "cost", rows)
    warn(problems)
    return 0
