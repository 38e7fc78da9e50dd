"""A trigger's declaration: its name, what it costs, its settings and how to build it.

Each trigger module declares ``SPECS`` next to its class; the registry (`triggers.registry`) lists
where the built-ins' declarations live and adds the plugins'. Config keys, CLI options, server
request fields, `arag triggers` and the docs' tables are derived from these declarations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from corpora.settings import Setting, SettingError, unknown_setting
from triggers.base import Trigger, TriggerConfigError

# what one decision costs beyond the draft: nothing, N sampled drafts, one more model call, a search
# before deciding, a look-up in a corpus-statistics index
COSTS = ("free", "samples", "extra call", "retriever call", "index look-up")
RUNTIME = ("lm", "tokenizer")  # what a trigger may need from the process, not from settings


# How a trigger's threshold relates to its score: the threshold at which it fires exactly where
# "score > cut", so that `arag calibrate` writes a cut on the score back as the trigger's own setting.
def same(cut: float) -> float:  # fire when score > θ
    return cut


def negated(cut: float) -> float:  # score = −value, fire when value < θ
    return -cut


def complement(cut: float) -> float:  # score = 1 − value, fire when value < θ
    return 1.0 - cut


def from_log_count(cut: float) -> float:  # score = −log(1 + count), fire when count < θ
    return math.expm1(-cut)


def threshold_setting(default: float | None, help: str) -> Setting:
    """The ``threshold`` setting most triggers declare (fire when the score passes it)."""
    return Setting("threshold", float, default, help)


@dataclass(frozen=True)
class TriggerSpec:
    """``build(**settings, **runtime)`` gets only declared settings (given ones; the others keep its
    defaults) and the ``runtime`` objects it asks for; ``extra``: the pip extra its libraries come with;
    ``threshold_of``: its ``threshold`` for a cut on its score (`same` when it fires where score > θ)."""

    name: str
    cost: str
    build: Callable[..., Trigger]
    settings: tuple[Setting, ...] = ()
    help: str = ""
    extra: str | None = None
    runtime: tuple[str, ...] = ()
    threshold_of: Callable[[float], float] = same

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise TriggerConfigError(f"trigger {self.name}: cost must be one of {', '.join(COSTS)}, got {self.cost!r}")
        if not set(self.runtime) <= set(RUNTIME):
            raise TriggerConfigError(f"trigger {self.name}: runtime may ask for {', '.join(RUNTIME)}")

    def setting(self, key: str) -> Setting:
        for s in self.settings:
            if s.name == key:
                return s
        raise TriggerConfigError(unknown_setting(key, self.name, self.settings))

    def checked(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` (None = not given, dropped) checked against the declarations: one
        TriggerConfigError naming the trigger for an unknown key or a bad value."""
        out = {}
        for key, value in options.items():
            if value is None:
                continue
            try:
                out[key] = self.setting(key).check(value)
            except SettingError as exc:
                raise TriggerConfigError(f"{self.name}: {exc}") from None
        return out

    def make(self, options: dict[str, Any], runtime: dict[str, Any]) -> Trigger:
        return self.build(**self.checked(options), **{k: runtime[k] for k in self.runtime if k in runtime})
