"""Answer metrics (SQuAD-style) and the quality of an uncertainty score as a predictor of errors.

- ``exact_match`` / ``token_f1``: the SQuAD v1.1 evaluation script's normalisation (lower case,
  punctuation and the articles a/an/the removed, whitespace collapsed), max over the references.
- ``contains``: a normalised reference occurs in the normalised answer on word boundaries — the
  usual "accuracy" for small models, which answer in a sentence rather than a span.
- ``roc_auc``: probability that a wrong answer scores higher than a right one (ties count 1/2).
- ``prr``: LM-Polygraph's prediction-rejection ratio. Rejecting the most uncertain questions first,
  the mean quality of the kept ones traces a curve; PRR = (area under it − random's) /
  (oracle's − random's): 1 is a perfect ranking, 0 is chance.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

import numpy as np

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(r) for r in references))


def _f1(prediction: str, reference: str) -> float:
    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    return max((_f1(prediction, r) for r in references), default=0.0)


def contains(prediction: str, references: Sequence[str]) -> float:
    p = f" {normalize_answer(prediction)} "
    return float(any(n and f" {n} " in p for n in (normalize_answer(r) for r in references)))


METRICS = {"contains": contains, "em": exact_match, "f1": token_f1}


def score_answer(prediction: str, references: Sequence[str]) -> dict[str, float]:
    return {name: fn(prediction, references) for name, fn in METRICS.items()}


# -- signal quality -------------------------------------------------------------------------------
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
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
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
    su, sq = u[order], q[order].copy()
    i = 0
    while i < n:
        j = i
        while j + 1 < n and su[j + 1] == su[i]:
            j += 1
        sq[i:j + 1] = sq[i:j + 1].mean()
        i = j + 1
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
