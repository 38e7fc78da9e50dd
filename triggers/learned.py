"""A learned trigger: a logistic regression over other triggers' scores, read from a small JSON file.

`arag calibrate --learn` fits it (`benchmarks/learn.py`) and writes the file; ``--trigger
learned:PATH`` loads it here. Only the signals the file names are built and scored, so the trigger
costs exactly what its features cost (a model over draft statistics and a search never samples).

The file (``format`` = `FORMAT`), human-readable on purpose::

    {"format": "arag-learned-trigger/1", "label": "helps",
     "features": [{"signal": "msp", "settings": {"threshold": 5.0},
                   "mean": 4.1, "scale": 2.3, "coefficient": 0.42, "train_min": 0.3, "train_max": 12.9}, ...],
     "intercept": -1.7, "threshold": 0.21, "budget": 0.5, "training": {...}, "cv": {...}, "held_out": {...}}

score = P(label | features) = sigmoid(intercept + Σ coefficient · (x − mean) / scale), where x is
the signal's score (``Signal.score``) built with ``settings``; the trigger fires when the
probability exceeds ``threshold``. Non-finite scores (an empty draft's token confidence is +inf, a
search that finds nothing gives retrieval-top1 +inf) are mapped, at fitting and at scoring alike, to
the feature's training range: +inf → ``train_max``, −inf → ``train_min``, NaN → ``mean`` (the
neutral value after scaling). A clamp rather than an indicator feature: such scores are rare in
training data, so an indicator's coefficient would be fitted on a handful of questions or none.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from triggers.base import Signal, StepState, Trigger, TriggerConfigError, check_threshold

FORMAT = "arag-learned-trigger/1"
LABELS = ("helps", "needed")
_FEATURE_NUMBERS = ("mean", "scale", "coefficient", "train_min", "train_max")


@dataclass(frozen=True)
class Feature:
    """One signal's score as a model input: how to build the signal, and how to scale its score."""

    signal: str
    settings: dict[str, Any]
    mean: float
    scale: float
    coefficient: float
    train_min: float
    train_max: float

    def finite(self, x: float) -> float:
        """``x`` with non-finite values mapped into the training range (module docstring)."""
        if math.isnan(x):
            return self.mean
        if math.isinf(x):
            return self.train_max if x > 0 else self.train_min
        return x


@dataclass(frozen=True)
class LearnedModel:
    """The parsed file: features in order, intercept, and the probability threshold."""

    features: tuple[Feature, ...]
    intercept: float
    threshold: float
    label: str = "helps"
    extra: dict[str, Any] = field(default_factory=dict)  # training, cv, held_out: kept for the reader

    @property
    def signals(self) -> list[str]:
        return [f.signal for f in self.features]

    def probability(self, scores: Sequence[float]) -> float:
        """P(label) for the raw signal scores, in feature order."""
        z = self.intercept + sum(f.coefficient * (f.finite(float(x)) - f.mean) / f.scale
                                 for f, x in zip(self.features, scores, strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_json(self) -> dict[str, Any]:
        feats = [{"signal": f.signal, "settings": f.settings, **{k: getattr(f, k) for k in _FEATURE_NUMBERS}}
                 for f in self.features]
        return {"format": FORMAT, "label": self.label, "features": feats, "intercept": self.intercept,
                "threshold": self.threshold, **self.extra}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TriggerConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def parse_model(data: Any, where: str = "learned trigger") -> LearnedModel:
    """A `LearnedModel` from the file's JSON object, or a one-line TriggerConfigError naming the field."""
    if not isinstance(data, dict):
        raise TriggerConfigError(f"{where}: not a learned-trigger file (a JSON object is expected)")
    if data.get("format") != FORMAT:
        raise TriggerConfigError(f"{where}: not a learned-trigger file (format {data.get('format')!r}, expected {FORMAT!r})")
    raw = data.get("features")
    if not isinstance(raw, list) or not raw:
        raise TriggerConfigError(f"{where}: 'features' must be a non-empty list")
    features = []
    for i, f in enumerate(raw):
        at = f"{where}: features[{i}]"
        if not isinstance(f, dict) or not isinstance(f.get("signal"), str) or not f["signal"]:
            raise TriggerConfigError(f"{at} needs a 'signal' name")
        settings = f.get("settings", {})
        if not isinstance(settings, dict):
            raise TriggerConfigError(f"{at}.settings must be an object")
        nums = {k: _number(f.get(k), f"{at}.{k}") for k in _FEATURE_NUMBERS}
        if nums["scale"] <= 0:
            raise TriggerConfigError(f"{at}.scale must be positive, got {nums['scale']}")
        if nums["train_min"] > nums["train_max"]:
            raise TriggerConfigError(f"{at}: train_min exceeds train_max")
        features.append(Feature(f["signal"], settings, **nums))
    if len({f.signal for f in features}) != len(features):
        raise TriggerConfigError(f"{where}: a signal is listed twice in 'features'")
    label = data.get("label", "helps")
    if label not in LABELS:
        raise TriggerConfigError(f"{where}: label must be one of {', '.join(LABELS)}, got {label!r}")
    extra = {k: v for k, v in data.items() if k not in ("format", "label", "features", "intercept", "threshold")}
    return LearnedModel(tuple(features), _number(data.get("intercept"), f"{where}: intercept"),
                        _number(data.get("threshold"), f"{where}: threshold"), label, extra)


def read_model(path: str | Path) -> LearnedModel:
    """Parse the file at ``path``; a missing, unreadable or malformed file is one TriggerConfigError line."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TriggerConfigError(f"{p}: learned-trigger file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TriggerConfigError(f"{p}: cannot read the learned-trigger file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TriggerConfigError(f"{p}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    return parse_model(data, str(p))


@dataclass
class LearnedTrigger:
    """Scores only the model's signals on the shared step state and combines them."""

    model: LearnedModel
    members: Mapping[str, Trigger]
    threshold: float
    name: str = "learned"

    def check_question(self, state: StepState) -> Signal | None:
        return None  # its features are step scores

    def score(self, state: StepState) -> Signal:
        signals = {name: self.members[name].score(state) for name in self.model.signals}
        p = self.model.probability([s.score for s in signals.values()])
        return Signal(score=p, fired=p > self.threshold,
                      details={"probability": p, "threshold": self.threshold, "label": self.model.label,
                               "features": {n: s.score for n, s in signals.items()}})


def load_learned(path: str | Path, build: Callable[[str, dict[str, Any]], Trigger], threshold: float | None = None,
                 name: str | None = None) -> LearnedTrigger:
    """The trigger the file at ``path`` describes. ``build(signal, settings)`` builds one signal's
    trigger (the registry's, so that `triggers/` needs no name table); ``threshold`` overrides the file's."""
    model = read_model(path)
    members = {f.signal: build(f.signal, dict(f.settings)) for f in model.features}
    theta = model.threshold if threshold is None else check_threshold(threshold)
    return LearnedTrigger(model, members, theta, name or f"learned:{path}")
