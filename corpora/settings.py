"""A declared setting: name, type, default, valid range or choices and a one-line help.

Triggers and retrievers declare their settings once as `Setting`s; the config file's type checks,
the CLI's ``--trigger-option KEY=VALUE``, the server's ``arag.trigger_options``, `arag triggers` and
the docs' settings tables are all read from those declarations, so they cannot disagree. It lives in
the lowest layer so that retrievers and triggers can both declare settings.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterable

KINDS: dict[type, str] = {float: "a finite number", int: "an integer", str: "a string", bool: "a boolean"}


class SettingError(ValueError):
    """A value that its setting's declaration rules out, or a setting that is not declared."""


@dataclass(frozen=True)
class Setting:
    """``range``: inclusive (low, high), either end None for unbounded; ``choices``: the allowed
    strings; ``default`` None means "decided by the component" (the help says how)."""

    name: str
    type: type
    default: Any
    help: str
    range: tuple[float | None, float | None] | None = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in KINDS:
            raise TypeError(f"setting {self.name}: type must be one of {', '.join(t.__name__ for t in KINDS)}")

    @property
    def kind(self) -> str:
        return KINDS[self.type]

    def valid(self) -> str:
        """The valid values in words: ``between 0 and 1``, ``at least 2``, ``one of a, b``, or ``any``."""
        lo, hi = self.range or (None, None)
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if lo is not None and hi is not None:
            return f"between {lo} and {hi}"
        if lo is not None or hi is not None:
            return f"at least {lo}" if lo is not None else f"at most {hi}"
        return "any"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid for this setting ("must be an integer, got 'x'"), or None."""
        if self.type is bool:
            wrong = not isinstance(value, bool)
        elif isinstance(value, bool):  # TOML's and JSON's true/false are not 1/0
            wrong = True
        elif self.type is float:
            wrong = not isinstance(value, (int, float)) or not math.isfinite(value)
        else:
            wrong = not isinstance(value, self.type)
        if wrong:
            return f"must be {self.kind}, got {value!r}"
        if self.choices and value not in self.choices:
            return f"must be {self.valid()}, got {value!r}"
        if self.range and not ((self.range[0] is None or value >= self.range[0]) and (self.range[1] is None or value <= self.range[1])):
            return f"must be {self.valid()}, got {value!r}"
        return None

    def parse(self, text: str) -> Any:
        """A command-line string as this setting's type, checked; SettingError naming the setting."""
        value: Any = text
        try:
            if self.type is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError
                value = text.lower() == "true"
            elif self.type in (int, float):
                value = self.type(text)
        except ValueError:
            raise SettingError(f"{self.name} must be {self.kind}, got {text!r}") from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        problem = self.problem(value)
        if problem:
            raise SettingError(f"{self.name} {problem}")
        return float(value) if self.type is float else value


def unknown_setting(key: str, owner: str, settings: Iterable[Setting]) -> str:
    """One line naming ``owner`` and listing its settings, with a close match suggested."""
    names = [s.name for s in settings]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{owner} has no setting {key!r} ({hint}{owner} takes: {', '.join(names) or 'none'})"
