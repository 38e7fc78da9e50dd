"""Answer metrics (SQuAD-style) and the quality of an uncertainty score as a predictor of errors.

- ``exact_match`` / ``token_f1``: the SQuAD v1.1 evaluation script's normalisation (lower case,
  punctuation and the articles a/an/the removed, whitespace collapsed; `corpora.text`, shared with
  the lexical equivalence judge), max over the references.
- ``contains``: a normalised reference occurs in the normalised answer on word boundaries — the
  usual "accuracy" for small models, which answer in a sentence rather than a span.
- ``roc_auc``: probability that a wrong answer scores higher than a right one (ties count 1/2);
  ``weighted_roc_auc`` computes it under bootstrap resampling weights.
- ``prr``: LM-Polygraph's prediction-rejection ratio. Rejecting the most uncertain questions first,
  the mean quality of the kept ones traces a curve; PRR = (area under it − random's) /
  (oracle's − random's): 1 is a perfect ranking, 0 is chance.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from corpora.text import contains as _contains
from corpora.text import normalize_answer
from corpora.text import token_f1 as _token_f1


def exact_match(prediction: str, references: Sequence[str]) -> float:
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(r) for r in references))


def token_f1(prediction: str, references: Sequence[str]) -> float:
    p = normalize_answer(prediction).split()
    return max((_token_f1(p, normalize_answer(r).split()) for r in references), default=0.0)


def contains(prediction: str, references: Sequence[str]) -> float:
    p = normalize_answer(prediction).split()
    return float(any(_contains(p, normalize_answer(r).split()) for r in references))


METRICS = {"contains": contains, "em": exact_match, "f1": token_f1}


def score_answer(prediction: str, references: Sequence[str]) -> dict[str, float]:
    return {name: fn(prediction, references) for name, fn in METRICS.items()}


# -- signal quality -------------------------------------------------------------------------------
def _tie_runs(sorted_values: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of equal values in ``sorted_values`` (inf ties with inf, NaN with nothing)."""
    cuts = (np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1).tolist()
    bounds = [0, *cuts, len(sorted_values)]
    return list(zip(bounds[:-1], bounds[1:]))


def weighted_roc_auc(scores: Sequence[float], labels: Sequence[bool], weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``scores`` for ``labels`` under each row of question ``weights`` (B, n) → (B,).

    Weighted Mann-Whitney: the weighted share of (positive, negative) pairs where the positive
    scores higher, ties counting one half — scikit-learn's ``roc_auc_score(labels, scores,
    sample_weight=w)`` (a test checks they agree), for all bootstrap resamples at once. Infinite
    scores rank like any other value. NaN where a row has no positive or no negative weight."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    order = np.argsort(s, kind="mergesort")
    starts = [start for start, _ in _tie_runs(s[order])]
    ws, ys = w[:, order], y[order]
    pos = np.add.reduceat(ws * ys, starts, axis=1)  # weight of positives per tie group, ascending score
    neg = np.add.reduceat(ws * ~ys, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (pos * (below + neg / 2)).sum(axis=1) / np.where(pairs > 0, pairs, 1.0), np.nan)


def roc_auc(scores: Sequence[float], errors: Sequence[bool]) -> float | None:
    """ROC-AUC of ``scores`` (higher = "the model does not know") for ``errors`` (True = wrong).
    None when only one class is present (undefined)."""
    if len(scores) == 0:
        return None
    auc = float(weighted_roc_auc(scores, errors, np.ones((1, len(scores))))[0])
    return auc if np.isfinite(auc) else None


def rejection_area(uncertainty: Sequence[float], quality: Sequence[float]) -> float:
    """Mean, over rejecting 0..n-1 of the most uncertain questions, of the kept questions' mean quality.

    Tied uncertainties are rejected in random order; the expected curve replaces each tied group's
    qualities by their mean (so a constant score scores exactly like random)."""
    u = np.asarray(uncertainty, dtype=float)
    q = np.asarray(quality, dtype=float)
    n = len(u)
    if n == 0:
        raise ValueError("no questions")
    order = np.argsort(u, kind="mergesort")  # most confident first
    sq = q[order]
    for start, stop in _tie_runs(u[order]):
        sq[start:stop] = sq[start:stop].mean()
    kept_means = np.cumsum(sq) / np.arange(1, n + 1)  # keep the k most confident, k = 1..n
    return float(kept_means.mean())


def prr(uncertainty: Sequence[float], quality: Sequence[float]) -> float | None:
    """Prediction-rejection ratio; None when every question has the same quality (undefined)."""
    q = np.asarray(quality, dtype=float)
    random_area = float(q.mean())
    oracle_area = rejection_area(-q, q)
    if np.isclose(oracle_area, random_area):
        return None
    return (rejection_area(uncertainty, q) - random_area) / (oracle_area - random_area)
