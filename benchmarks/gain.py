"""Adaptive gain: how much of the oracle's advantage over random triggering a trigger achieves.

The accuracy-vs-retrieval-rate curve of a trigger
    Per question a trigger either does not fire (its *low* answer: the closed-book draft) or fires
    (its *high* answer: the retrieval-augmented one). Sweeping the cut of "fire when score > cut"
    from above the highest score down to below the lowest, questions switch from low to high in
    order of decreasing score; questions with equal scores switch together. Each cut gives one point
    (retrieval rate, accuracy) = the means over questions; consecutive points are joined by straight
    lines, which is the expected curve when tied questions switch one by one in random order. The
    curve starts at retrieval rate 0 with ``never``'s accuracy and ends at rate 1 with ``always``'s:
    those two points are added when the sweep does not reach them (a question check that fires
    regardless of the cut, scores of −inf that never fire).

The references
    *random* fires on a random fraction p of the questions: its expected curve is the straight line
    from (0, never) to (1, always), area (never + always) / 2. The *oracle* retrieves first on the
    questions where retrieval helps (always's answer scores higher than never's), then on neutral
    ones, last on those where it hurts: the same sweep with score = always's quality − never's, the
    highest curve any ordering of those answers can draw.

    adaptive gain = (area under the trigger's curve − random's) / (oracle's − random's)

1 is the oracle, 0 is random (in expectation, for scores unrelated to the outcome), below 0 is worse
than random (−1 = the reversed oracle). It is None when retrieval changes no answer (oracle = random).
A policy whose fired answer differs from ``always`` (QuCo's question check retrieves with the question)
can exceed 1 against the never/always oracle.

Every function takes ``weights`` of shape (B, n): one row per bootstrap resample (row of ones = the
observed sample), so one call gives the point value and its resampling distribution.
"""
from __future__ import annotations

import numpy as np


def sweep(score: np.ndarray, low: np.ndarray, high: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted means of the (n, C) per-question values at every cut, highest score switching first.

    Returns (B, G + 1, C): point 0 = nothing fires (all ``low``), point g = the first g groups of tied
    scores fire. NaN scores sort last (they fire only with the lowest group)."""
    s = np.where(np.isnan(score), -np.inf, np.asarray(score, dtype=float))
    order = np.argsort(-s, kind="stable")
    s = s[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # last index of each tie group
    w = np.asarray(weights, dtype=float)
    total = w.sum(axis=1)[:, None]
    base = w @ low / total  # (B, C)
    cum = np.cumsum(w[:, order, None] * (high - low)[order][None], axis=1)  # (B, n, C)
    points = base[:, None, :] + cum[:, ends, :] / total[:, :, None]
    return np.concatenate([base[:, None, :], points], axis=1)


def area(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Trapezoid area under the polylines (B, P) → (B,). ``x`` is non-decreasing along each row."""
    return np.sum((x[:, 1:] - x[:, :-1]) * (y[:, 1:] + y[:, :-1]) / 2, axis=1)


def with_endpoints(x: np.ndarray, y: np.ndarray, never: np.ndarray, always: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve from (0, never) to (1, always): the two end points prepended and appended."""
    b = x.shape[0]
    return (np.concatenate([np.zeros((b, 1)), x, np.ones((b, 1))], axis=1),
            np.concatenate([never[:, None], y, always[:, None]], axis=1))


def oracle_curve(closed: np.ndarray, rag: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(retrieval rate, accuracy) of the oracle: retrieve where it helps first, where it hurts last."""
    n = len(closed)
    low = np.stack([np.zeros(n), closed], axis=1)
    high = np.stack([np.ones(n), rag], axis=1)
    pts = sweep(rag - closed, low, high, weights)
    return pts[:, :, 0], pts[:, :, 1]


def adaptive_gain(score: np.ndarray, low: np.ndarray, high: np.ndarray, closed: np.ndarray, rag: np.ndarray,
                  weights: np.ndarray) -> dict[str, np.ndarray]:
    """Gain of a trigger, each value (B,).

    ``low``/``high``: (n, 2) = (retrieved 0/1, quality) of the answer when the trigger does not / does
    fire; ``closed``/``rag``: (n,) quality of never's and always's answers (the references).
    Returns ``gain`` (NaN where undefined), ``area``, ``random_area``, ``oracle_area``."""
    total = weights.sum(axis=1)
    never, always = weights @ closed / total, weights @ rag / total
    pts = sweep(score, low, high, weights)
    x, y = with_endpoints(pts[:, :, 0], pts[:, :, 1], never, always)
    trig = area(x, y)
    ox, oy = oracle_curve(closed, rag, weights)
    orc = area(ox, oy)
    rand = (never + always) / 2
    span = orc - rand
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(span > 1e-12, (trig - rand) / np.where(span > 1e-12, span, 1.0), np.nan)
    return {"gain": gain, "area": trig, "random_area": rand, "oracle_area": orc}
