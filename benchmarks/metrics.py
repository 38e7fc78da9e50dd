"""Answer metrics (SQuAD-style) and the quality of an uncertainty score as a predictor of errors.

- ``exact_match`` / ``token_f1``: the SQuAD v1.1 evaluation script's normalisation (lower case,
  punctuation and the articles a/an/the removed, whitespace collapsed; `corpora.text`, shared with
  the lexical equivalence judge), max over the references.
- ``contains``: a normalised reference occurs in the normalised answer on word boundaries — the
  usual "accuracy" for small models, which answer in a sentence rather than a span.
- ``roc_auc``: probability that a wrong answer scores higher than a right one (ties count 1/2).
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


def roc_auc(scores: Sequence[float], errors: Sequence[bool]) -> float | None:
    """ROC-AUC of ``scores`` (higher = "the model does not know") for ``errors`` (True = wrong).
    None when only one class is present (undefined)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(errors, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    # Mann-Whitney U with mid-ranks for ties; infinite scores rank like any other value
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    for start, stop in _tie_runs(s[order]):
        ranks[order[start:stop]] = (start + stop - 1) / 2 + 1  # the run's mean 1-based rank
    u = ranks[y].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


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
