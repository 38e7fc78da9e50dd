"""Names → components, so the CLI, the server and the benchmarks build triggers the same way.

Trigger names: token-confidence, always, never, semantic-entropy, quco; the signals of issue 12
(draft: msp, perplexity, mean-entropy; samples: lexical-similarity, num-sem-sets, eigval, degree;
one more call: p-true; question: question-length, entity-frequency; a search first:
retrieval-top1, retrieval-gap, retrieval-support); ``a+b`` is AnyOf(a, b).
Factories of the costlier triggers are imported lazily: `arag ask --trigger never` should not
load spaCy.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from triggers import AnyOf, Always, Never, TokenConfidence, Trigger, TriggerConfigError


def _token_confidence(threshold: float | None = None, aggregation: str = "min_prob", **_: Any) -> Trigger:
    return TokenConfidence(aggregation=aggregation, threshold=threshold)


def _aggregation(aggregation: str, name: str) -> Callable[..., Trigger]:
    """A token-confidence aggregation under its own trigger name (its own bench column and config section)."""
    def factory(threshold: float | None = None, **_: Any) -> Trigger:
        return TokenConfidence(aggregation=aggregation, threshold=threshold, name=name)

    return factory


def _lazy(module: str, function: str = "from_options", **fixed: Any) -> Callable[..., Trigger]:
    def factory(**options: Any) -> Trigger:
        return getattr(importlib.import_module(module), function)(**{**options, **fixed})

    return factory


TRIGGERS: dict[str, Callable[..., Trigger]] = {
    "token-confidence": _token_confidence,
    "always": lambda **_: Always(),
    "never": lambda **_: Never(),
    "semantic-entropy": _lazy("triggers.semantic_entropy"),
    "quco": _lazy("triggers.quco"),
    "msp": _aggregation("sequence_prob", "msp"),
    "perplexity": _aggregation("mean_logprob", "perplexity"),
    "mean-entropy": _aggregation("mean_entropy", "mean-entropy"),
    "lexical-similarity": _lazy("triggers.consistency", measure="lexical_similarity"),
    "num-sem-sets": _lazy("triggers.consistency", measure="num_sem_sets"),
    "eigval": _lazy("triggers.consistency", measure="eigval"),
    "degree": _lazy("triggers.consistency", measure="degree"),
    "p-true": _lazy("triggers.p_true"),
    "question-length": _lazy("triggers.question_features", "question_length"),
    "entity-frequency": _lazy("triggers.question_features", "entity_frequency"),
    "retrieval-top1": _lazy("triggers.retrieval_evidence", measure="top1"),
    "retrieval-gap": _lazy("triggers.retrieval_evidence", measure="gap"),
    "retrieval-support": _lazy("triggers.retrieval_evidence", measure="support"),
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
