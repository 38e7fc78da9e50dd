"""Honest metrics: adaptive gain against random and the oracle, bootstrap intervals, the weighted
ROC-AUC against scikit-learn, and non-finite floats in JSON (no model)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.bootstrap import estimate, interval, resample_weights
from benchmarks.gain import adaptive_gain, area, oracle_curve, sweep
from benchmarks.metrics import roc_auc, weighted_roc_auc


def _outcomes(n: int = 120, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Closed-book and retrieval-augmented correctness (0/1) with helps, neutral and hurts questions."""
    rng = np.random.default_rng(seed)
    closed = (rng.random(n) < 0.15).astype(float)
    rag = np.where(closed == 1, rng.random(n) < 0.7, rng.random(n) < 0.35).astype(float)
    return closed, rag


def _gain(score: np.ndarray, closed: np.ndarray, rag: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    n = len(score)
    low = np.stack([np.zeros(n), closed], axis=1)
    high = np.stack([np.ones(n), rag], axis=1)
    return adaptive_gain(score, low, high, closed, rag, np.ones((1, n)) if weights is None else weights)["gain"]


# -- adaptive gain ----------------------------------------------------------------------------------
def test_curve_by_hand():
    # four questions: helps (score 0.9), neutral-wrong (0.5), hurts (0.7), neutral-right (0.1)
    closed, rag = np.array([0.0, 0.0, 1.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    score = np.array([0.9, 0.5, 0.7, 0.1])
    low = np.stack([np.zeros(4), closed], axis=1)
    high = np.stack([np.ones(4), rag], axis=1)
    pts = sweep(score, low, high, np.ones((1, 4)))[0]
    # cut order 0.9, 0.7, 0.5, 0.1: accuracy 0.5 → 0.75 → 0.5 → 0.5 → 0.5
    assert pts.tolist() == [[0.0, 0.5], [0.25, 0.75], [0.5, 0.5], [0.75, 0.5], [1.0, 0.5]]
    ox, oy = oracle_curve(closed, rag, np.ones((1, 4)))
    assert ox[0].tolist() == [0.0, 0.25, 0.75, 1.0]  # helps, then the tied neutral pair at once, then hurts
    assert oy[0].tolist() == [0.5, 0.75, 0.75, 0.5]
    trig = area(pts[None, :, 0], pts[None, :, 1])[0]  # 0.125·(1.25 + 1.25) + 0.25 + 0.25 ... = 0.5625
    assert trig == pytest.approx(0.5625)
    assert area(ox, oy)[0] == pytest.approx(0.6875)
    # never = always = 0.5: random area 0.5 → gain = 0.0625 / 0.1875
    assert _gain(score, closed, rag)[0] == pytest.approx(1 / 3)


def test_a_perfect_trigger_scores_one_and_the_reversed_one_minus_one():
    closed, rag = _outcomes()
    delta = rag - closed
    assert _gain(delta, closed, rag)[0] == pytest.approx(1.0)
    assert _gain(-delta, closed, rag)[0] == pytest.approx(-1.0)
    assert _gain(-delta + 0.01 * np.arange(len(delta)) / len(delta), closed, rag)[0] < 0  # worse than random


def test_random_scores_score_zero_in_expectation_and_a_constant_score_exactly():
    closed, rag = _outcomes()
    rng = np.random.default_rng(0)
    gains = [_gain(rng.random(len(closed)), closed, rag)[0] for _ in range(400)]
    assert abs(np.mean(gains)) < 3 * np.std(gains) / math.sqrt(len(gains))  # unbiased around 0
    assert np.std(gains) > 0.05  # and single draws do vary: a point estimate needs its interval
    assert _gain(np.full(len(closed), 0.3), closed, rag)[0] == pytest.approx(0.0)  # ties = random order


def test_gain_is_undefined_when_retrieval_changes_nothing_and_endpoints_are_added():
    closed = np.array([1.0, 0.0, 1.0])
    assert np.isnan(_gain(np.array([0.1, 0.2, 0.3]), closed, closed)[0])
    # a score of −inf never fires: the curve still ends at (1, always). Questions: helps (score 1),
    # helps (−inf), neutral-wrong (0.5); the curve (0,0)→(⅓,⅓)→(⅔,⅓)→(1,⅔) has random's area ⅓
    closed, rag = np.zeros(3), np.array([1.0, 1.0, 0.0])
    low = np.zeros((3, 2))
    high = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # the −inf question never switches
    g = adaptive_gain(np.array([1.0, -np.inf, 0.5]), low, high, closed, rag, np.ones((1, 3)))
    assert g["area"][0] == pytest.approx(1 / 3) and g["random_area"][0] == pytest.approx(1 / 3)
    assert g["oracle_area"][0] == pytest.approx(4 / 9)  # (0,0)→(⅔,⅔)→(1,⅔)
    assert g["gain"][0] == pytest.approx(0.0)


# -- bootstrap --------------------------------------------------------------------------------------
def test_resample_weights_are_seeded_counts_with_the_sample_first():
    w = resample_weights(50, resamples=200, seed=7)
    assert w.shape == (201, 50) and (w[0] == 1).all() and (w.sum(axis=1) == 50).all()
    assert (w == resample_weights(50, resamples=200, seed=7)).all()
    assert not (w == resample_weights(50, resamples=200, seed=8)).all()


def test_bootstrap_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    p, n, covered = 0.3, 100, 0
    trials = 300
    w = resample_weights(n, resamples=1000, seed=0)
    for _ in range(trials):
        correct = (rng.random(n) < p).astype(float)
        lo, hi = interval(w @ correct / n)
        covered += lo <= p <= hi
    assert 0.90 <= covered / trials <= 0.99


def test_bootstrap_interval_shape():
    rng = np.random.default_rng(2)
    widths = {}
    for n in (100, 400):
        correct = (rng.random(n) < 0.3).astype(float)
        est = estimate("accuracy", resample_weights(n) @ correct / n)
        lo, hi = est["accuracy_ci"]
        assert lo <= est["accuracy"] <= hi
        widths[n] = hi - lo
    assert 0.35 < widths[400] / widths[100] < 0.65  # ∝ 1/√n
    # a paired difference of a statistic with itself is exactly 0
    w = resample_weights(60)
    acc = w @ (rng.random(60) < 0.5) / 60
    assert interval(acc - acc) == [0.0, 0.0]
    assert interval(np.full(11, np.nan)) is None  # undefined in every resample


# -- ROC-AUC ----------------------------------------------------------------------------------------
def test_weighted_roc_auc_agrees_with_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    scores = np.round(rng.normal(size=80), 1)  # rounded: many ties
    labels = rng.random(80) < 0.3
    w = resample_weights(80, resamples=20, seed=1)
    ours = weighted_roc_auc(scores, labels, w)
    for row, value in zip(w, ours):
        assert value == pytest.approx(roc_auc_score(labels, scores, sample_weight=row))
    assert roc_auc(scores.tolist(), labels.tolist()) == pytest.approx(roc_auc_score(labels, scores))
    assert roc_auc([math.inf, 0.5, 0.2], [True, True, False]) == pytest.approx(1.0)  # inf ranks highest
    assert np.isnan(weighted_roc_auc([0.1, 0.2], [True, False], np.array([[2.0, 0.0]])))[0]


# -- non-finite floats in JSON ----------------------------------------------------------------------
def test_one_convention_for_non_finite_floats():
    from corpora.jsonfloat import encode_floats, json_text, read_float

    text = json_text({"a": math.inf, "b": [-math.inf, (1.5, math.nan)]})
    assert json.loads(text) == {"a": "inf", "b": ["-inf", [1.5, "nan"]]}
    assert read_float("inf") == math.inf and read_float("-inf") == -math.inf and math.isnan(read_float("nan"))
    assert read_float(None) is None and read_float(2) == 2.0
    with pytest.raises(ValueError, match="not a stored score"):
        read_float("high")
    assert encode_floats({"x": (1, 2.0)}) == {"x": [1, 2.0]}
