"""Bootstrap confidence intervals over questions, as resampling weights.

A resample draws n questions with replacement; question i then counts ``w[i]`` times (a multinomial
count). Every statistic in `benchmarks.gain` and `benchmarks.metrics.weighted_roc_auc` takes a
(B, n) weight matrix, so all resamples are computed at once and two statistics computed with the
same matrix are *paired* (the same questions in each resample): the interval of their difference is
the percentile interval of the per-resample differences. Row 0 is all ones: the observed sample.
"""
from __future__ import annotations

from typing import Any

import numpy as np

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def resample_weights(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(1 + resamples, n): the observed sample (ones), then seeded multinomial resample counts."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    return np.concatenate([np.ones((1, n)), counts], axis=0)


def interval(values: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """Percentile interval of the resampled values (rows 1..B), NaNs (undefined resamples) left out;
    None when fewer than half the resamples are defined."""
    v = np.asarray(values, dtype=float)[1:]
    v = v[np.isfinite(v)]
    if v.size < max(1, (len(values) - 1) // 2):
        return None
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]


def point(values: np.ndarray) -> float | None:
    """The observed-sample value (row 0); None when undefined."""
    v = float(np.asarray(values, dtype=float)[0])
    return v if np.isfinite(v) else None


def estimate(name: str, values: np.ndarray, level: float = LEVEL) -> dict[str, Any]:
    """``{name: observed value, name_ci: [lo, hi]}``."""
    return {name: point(values), f"{name}_ci": interval(values, level)}
