"""The tables `arag triggers` and `arag retrievers` print: one row per component, or one component's
settings (type, default, valid values, help), all read from the components' declarations."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Iterable, Sequence

from corpora.settings import Setting


def add_listing(sub: argparse._SubParsersAction, command: str, what: str, example: str,
                func: Callable[[argparse.Namespace], int]) -> None:
    """``arag COMMAND`` (the overview) and ``arag COMMAND show NAME`` (one component)."""
    p = sub.add_parser(command, help=f"list the {what} (plugins included) with their settings")
    actions = p.add_subparsers(dest=f"{command}_action", metavar="ACTION")
    show = actions.add_parser("show", help=f"one of the {what} with its settings")
    show.add_argument("name", help=f"its name, e.g. {example}")
    p.set_defaults(func=func, name=None)


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def _default(value: object) -> str:
    return "—" if value is None else str(value)


def print_overview(title: str, cost_label: str, rows: Iterable[tuple[str, str, Sequence[Setting], str]]) -> None:
    """One row per component: name, cost (or where it searches), its settings' names, what it does."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("name", cost_label, "settings", "what it reads"):
        table.add_column(column, overflow="fold")
    for name, cost, settings, help in rows:
        table.add_row(name, cost, ", ".join(s.name for s in settings) or "—", help)
    _console().print(table)


def print_detail(name: str, facts: Sequence[tuple[str, str]], settings: Sequence[Setting]) -> None:
    """One component: its facts (cost, extra, ...) and a row per setting."""
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{name}[/bold]")
    for label, value in facts:
        if value:
            console.print(f"  {label}: {value}", highlight=False)
    table = Table(title="settings" if settings else "settings: none", title_justify="left")
    for column in ("setting", "type", "default", "valid", "help"):
        table.add_column(column, overflow="fold")
    for s in settings:
        table.add_row(s.name, s.type.__name__, _default(s.default), s.valid(), s.help)
    console.print(table)


def warn(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"arag: warning: {line}", file=sys.stderr)
