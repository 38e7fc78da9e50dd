"""``--trigger-option KEY=VALUE``: any declared setting of the chosen triggers from the command line,
typed by its declaration, so a new trigger's settings need no new flag."""
from __future__ import annotations

from typing import Any, Sequence

from corpora.settings import SettingError, unknown_setting


def parse_trigger_options(pairs: Sequence[str], triggers: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings as typed values for ``triggers`` (``a+b`` or ``a,b``); a key that no part
    declares, a value of the wrong type or a malformed pair is one UsageError line."""
    from rag.errors import UsageError
    from triggers.registry import part_settings, split_names, trigger_parts

    parts = [p for name in split_names(triggers) for p in trigger_parts(name)]
    declared = {s.name: s for p in reversed(parts) for s in part_settings(p)}  # the first part's wins
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--trigger-option {pair!r}: expected KEY=VALUE")
        if key not in declared:
            owner = parts[0] if len(parts) == 1 else triggers
            raise UsageError(f"--trigger-option: {unknown_setting(key, owner, declared.values())}")
        if key in out:
            raise UsageError(f"--trigger-option {key}: given twice")
        try:
            out[key] = declared[key].parse(text.strip())
        except SettingError as exc:
            raise UsageError(f"--trigger-option: {triggers}: {exc}") from None
    return out
