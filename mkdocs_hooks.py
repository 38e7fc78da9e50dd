"""mkdocs hook: the settings tables of the docs are generated from the components' declarations
(`triggers.spec.TriggerSpec`, `retrievers.specs.RetrieverSpec`), so a page cannot drift from the code.

A page asks for a table with a comment on its own line:
``<!-- settings: triggers -->`` (every built-in trigger: cost and settings' names),
``<!-- settings: trigger-details -->`` (a heading and a settings table per trigger),
``<!-- settings: trigger NAME -->`` (one trigger's settings), ``<!-- settings: retrievers -->``.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)  # the checkout this site documents, ahead of any installed copy

MARKER = re.compile(r"^<!-- settings: (triggers|trigger-details|retrievers|trigger (\S+)) -->$", re.M)


def _cell(text: object) -> str:
    return "—" if text is None or text == "" else str(text).replace("|", "\\|")


def _settings(settings) -> str:
    rows = ["| setting | type | default | valid | meaning |", "|---|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.type.__name__} | {_cell(s.default)} | {_cell(s.valid())} | {_cell(s.help)} |" for s in settings]
    return "\n".join(rows) if settings else "No settings."


def _overview(rows) -> str:
    out = ["| name | cost | settings | what it reads |", "|---|---|---|---|"]
    out += [f"| `{name}` | {cost} | {', '.join(f'`{s.name}`' for s in settings) or '—'} | {_cell(help)} |"
            for name, cost, settings, help in rows]
    return "\n".join(out)


def table(marker: str, name: str | None) -> str:
    if sys.path[0] != ROOT:  # other plugins edit sys.path while the site builds
        sys.path.insert(0, ROOT)
    from retrievers.specs import BUILTIN_SPECS
    from triggers.registry import BUILTINS, get_spec

    if name is not None:
        return _settings(get_spec(name).settings)
    if marker == "triggers":
        return _overview((n, (s := get_spec(n)).cost, s.settings, s.help) for n in BUILTINS)
    if marker == "trigger-details":
        return "\n\n".join(f"### `{n}`\n\n{get_spec(n).help} (cost: {get_spec(n).cost})\n\n{_settings(get_spec(n).settings)}"
                           for n in BUILTINS)
    return _overview((s.name, s.where, s.settings, s.help) for s in BUILTIN_SPECS.values())


def on_page_markdown(markdown: str, **_) -> str:
    return MARKER.sub(lambda m: table(m.group(1), m.group(2)), markdown)
