"""Names → components, so the CLI, the server and the benchmarks build triggers the same way.

Trigger names: token-confidence, always, never, semantic-entropy, quco; ``a+b`` is AnyOf(a, b).
Factories of the costlier triggers are imported lazily: `arag ask --trigger never` should not
load spaCy.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from triggers import AnyOf, Always, Never, TokenConfidence, Trigger, TriggerConfigError


def _token_confidence(threshold: float | None = None, aggregation: str = "min_prob", **_: Any) -> Trigger:
    return TokenConfidence(aggregation=aggregation, threshold=threshold)


def _lazy(module: str) -> Callable[..., Trigger]:
    def factory(**options: Any) -> Trigger:
        return importlib.import_module(module).from_options(**options)

    return factory


TRIGGERS: dict[str, Callable[..., Trigger]] = {
    "token-confidence": _token_confidence,
    "always": lambda **_: Always(),
    "never": lambda **_: Never(),
    "semantic-entropy": _lazy("triggers.semantic_entropy"),
    "quco": _lazy("triggers.quco"),
}


def trigger_parts(name: str) -> list[str]:
    """The known trigger names of ``a+b``; an empty part (``always+``) or an unknown name is an error."""
    parts = [p.strip() for p in name.split("+")]
    if not all(parts):
        raise TriggerConfigError(f"empty trigger name in {name!r}" if name.strip() else "empty trigger name")
    for part in parts:
        if part not in TRIGGERS:
            raise TriggerConfigError(f"unknown trigger {part!r}; choose from {', '.join(TRIGGERS)} (or a+b)")
    return parts


def build_trigger(name: str, **options: Any) -> Trigger:
    """Build a trigger by name; options that a trigger does not take are ignored.

    ``options`` may carry per-trigger overrides as ``{"per_trigger": {name: {...}}}`` (from a config
    file, named by ``config_file`` so that a bad value there is reported with the file); explicit
    options win.
    """
    per = options.pop("per_trigger", {}) or {}
    config_file = options.pop("config_file", None)
    parts = trigger_parts(name)
    if len(parts) > 1 and options.get("threshold") is not None:
        raise TriggerConfigError("--threshold is ambiguous for a combined trigger; set per-trigger thresholds in the config file")
    built = []
    for part in parts:
        merged = {**per.get(part, {}), **{k: v for k, v in options.items() if v is not None}}
        try:
            built.append(TRIGGERS[part](**merged))
        except TriggerConfigError as exc:
            if config_file and per.get(part):
                raise TriggerConfigError(f"{exc} (with the settings of {config_file} [triggers.{part}])") from None
            raise
    return built[0] if len(built) == 1 else AnyOf(built, name="+".join(parts))
