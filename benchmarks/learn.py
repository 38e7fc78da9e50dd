"""Fit a learned trigger (`triggers/learned.py`) on cached benchmark records.

Features are the signals' step scores exactly as `arag bench` caches them (``record["signals"][s]
["score"]``: the score each trigger gives the closed-book draft); the label is, per question,

- ``helps`` (default): closed-book wrong and retrieval-augmented right. Adaptive gain measures a
  trigger against the oracle, which retrieves first exactly there; a classifier of "helps" ranks
  questions in the oracle's order. With a weak model nearly every closed-book answer is wrong, so
  ``needed`` has almost no negatives and mostly separates questions where retrieval fails anyway;
- ``needed``: closed-book wrong (AdaRAGUE's label), offered for strong models.

Training split: the even positions of the (seeded, shuffled) question order, as `arag calibrate`
uses them; the odd positions are held out. On the training split, a scikit-learn pipeline
(StandardScaler → LogisticRegression) picks its regularisation C by stratified k-fold
cross-validated ROC-AUC, is refitted on the whole split, and the probability threshold is chosen
for the retrieval budget (best accuracy at a retrieval rate ≤ budget, as `arag calibrate` does). The
held-out half reports ROC-AUC, adaptive gain (bootstrap intervals) and the paired gain difference
to the best single signal.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from benchmarks.bootstrap import resample_weights
from benchmarks.calibration import pick_cut, split_halves
from benchmarks.costs import add
from benchmarks.quality import Questions, operating_point, signal_rows, strip_private
from benchmarks.report import Scorer, aggregate
from benchmarks.runner import BenchError
from corpora.jsonfloat import encode_floats, read_float
from triggers.learned import LABELS, Feature, LearnedModel

LEARNED = "learned"
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
FOLDS = 5


def signal_settings(signal: str, trigger_options: dict[str, Any]) -> dict[str, Any]:
    """The settings the bench run built ``signal`` with (its config table, then the run's flags),
    restricted to the keys that signal reads: what `--trigger learned:PATH` must rebuild it with."""
    from triggers.registry import part_settings

    per = (trigger_options.get("per_trigger") or {}).get(signal, {})
    merged = {**per, **{k: v for k, v in trigger_options.items() if k != "per_trigger" and v is not None}}
    return {k: v for k, v in merged.items() if k in {s.name for s in part_settings(signal)}}


def raw_features(records: Sequence[dict], signals: Sequence[str]) -> np.ndarray:
    """(n, d) cached scores (±inf and NaN kept)."""
    missing = [s for s in signals if s not in records[0].get("signals", {})]
    if missing:
        raise BenchError(f"no cached scores for {', '.join(missing)} in these results")
    return np.asarray([[read_float(r["signals"][s]["score"]) for s in signals] for r in records], dtype=float)


def finite_ranges(x: np.ndarray, signals: Sequence[str]) -> list[tuple[float, float, float]]:
    """Per feature (min, max, mean) over its finite training values."""
    out = []
    for j, name in enumerate(signals):
        col = x[:, j][np.isfinite(x[:, j])]
        if col.size == 0:
            raise BenchError(f"signal {name} has no finite score on the training split")
        out.append((float(col.min()), float(col.max()), float(col.mean())))
    return out


def clamp(x: np.ndarray, ranges: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """Non-finite values mapped as `triggers.learned.Feature.finite` maps them: +inf → max, −inf → min, NaN → mean."""
    out = x.copy()
    for j, (lo, hi, mean) in enumerate(ranges):
        col = out[:, j]
        col[np.isnan(col)] = mean
        col[np.isposinf(col)] = hi
        col[np.isneginf(col)] = lo
    return out


def labels(q: Questions, label: str) -> np.ndarray:
    if label not in LABELS:
        raise BenchError(f"--label must be one of {', '.join(LABELS)}, got {label!r}")
    return (q.helps if label == "helps" else q.needed).astype(int)


def fit_logistic(x: np.ndarray, y: np.ndarray, folds: int = FOLDS, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """StandardScaler → LogisticRegression, C chosen by stratified k-fold ROC-AUC, refitted on all of ``x``."""
    from corpora.extras import require

    require("learn", "fitting a learned trigger (arag calibrate --learn)")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if folds < 2:
        raise BenchError(f"--folds must be at least 2, got {folds}")
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < 2:
        raise BenchError(f"the training split has {int(y.sum())} positive and {int(len(y) - y.sum())} negative questions; "
                         "cross-validation needs at least 2 of each (more questions, or the other --label)")
    k = min(folds, minority)
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    pipe = Pipeline([("scaler", StandardScaler()), ("lr", LogisticRegression(max_iter=1000))])
    search = GridSearchCV(pipe, {"lr__C": list(C_GRID)}, scoring="roc_auc", cv=cv, refit=True)
    search.fit(x, y)
    res = search.cv_results_
    info = {"folds": k, "seed": seed, "scoring": "roc_auc", "C_grid": list(C_GRID),
            "mean_roc_auc": [float(v) for v in res["mean_test_score"]], "std_roc_auc": [float(v) for v in res["std_test_score"]],
            "chosen_C": float(search.best_params_["lr__C"]), "best_mean_roc_auc": float(search.best_score_)}
    return search.best_estimator_, info


def to_model(pipe: Any, signals: Sequence[str], settings: dict[str, dict], ranges: Sequence[tuple[float, float, float]],
             label: str, threshold: float = 0.5) -> LearnedModel:
    scaler, lr = pipe.named_steps["scaler"], pipe.named_steps["lr"]
    feats = tuple(Feature(s, settings[s], float(scaler.mean_[j]), float(scaler.scale_[j]), float(lr.coef_[0][j]),
                          ranges[j][0], ranges[j][1]) for j, s in enumerate(signals))
    return LearnedModel(feats, float(lr.intercept_[0]), threshold, label)


def with_learned(records: Sequence[dict], model: LearnedModel) -> list[dict]:
    """Copies of the records with the model's score as a cached ``learned`` signal, so every policy
    and report function reads it like any trigger. Its cost is the sum of its signals' stand-alone
    costs (an upper bound where two of them share samples; `arag bench --policies learned:PATH`
    charges the exact cost)."""
    out = []
    for r in records:
        sigs = [r["signals"][s] for s in model.signals]
        p = model.probability([read_float(s["score"]) for s in sigs])
        learned = {"score": p, "fired": p > model.threshold, "costs": add(*(s["costs"] for s in sigs)),
                   "searched": any(s.get("searched") for s in sigs)}
        out.append({**r, "signals": {**r["signals"], LEARNED: learned}})
    return out


def fit(train: Sequence[dict], signals: Sequence[str], trigger_options: dict[str, Any], label: str = "helps",
        metric: str = "contains", budget: float | None = None, folds: int = FOLDS, seed: int = 0) -> tuple[LearnedModel, dict]:
    """The model fitted on ``train`` with its threshold chosen there for ``budget``; returns it and
    ``extra``'s training part (budget, metric, cv, the training operating point)."""
    scorer = Scorer()
    q_train = Questions(train, lambda r, text: scorer(r, text)[metric], resample_weights(len(train), 0))
    x = raw_features(train, signals)
    ranges = finite_ranges(x, signals)
    y = labels(q_train, label)
    pipe, cv = fit_logistic(clamp(x, ranges), y, folds, seed)
    settings = {s: signal_settings(s, trigger_options) for s in signals}
    model = to_model(pipe, signals, settings, ranges, label)
    cut, row = pick_cut(with_learned(train, model), LEARNED, metric, budget)
    train_fit = {"questions": len(train), "positives": int(y.sum()), "retrieval_rate": row["retrieval_rate"], metric: row[metric]}
    return LearnedModel(model.features, model.intercept, cut, label), {"budget": budget, "metric": metric, "cv": cv, "train": train_fit}


def learn(records: Sequence[dict], signals: Sequence[str], trigger_options: dict[str, Any], label: str = "helps",
          metric: str = "contains", budget: float | None = None, folds: int = FOLDS, seed: int = 0) -> tuple[LearnedModel, dict]:
    """Fit on the even positions, choose the threshold there, evaluate on the odd ones; returns the
    model (``extra`` filled with cv, the threshold's budget and the held-out figures) and the held-out summary."""
    if len(records) < 8:
        raise BenchError("learning a trigger needs at least 8 questions (4 per half)")
    train, held = split_halves(records)
    model, extra = fit(train, signals, trigger_options, label, metric, budget, folds, seed)
    held_out = evaluate(held, model, metric)
    return LearnedModel(model.features, model.intercept, model.threshold, label, {**extra, "held_out": held_out}), held_out


def evaluate(records: Sequence[dict], model: LearnedModel, metric: str = "contains") -> dict[str, Any]:
    """The learned score against each of its signals on ``records``: ROC-AUC for both labels and
    adaptive gain with bootstrap intervals, paired gain difference to the best other column, and
    the operating point at the model's threshold with never/always."""
    recs = with_learned(records, model)
    scorer = Scorer()
    q = Questions(recs, lambda r, text: scorer(r, text)[metric], resample_weights(len(recs)))
    columns = {LEARNED: [read_float(r["signals"][LEARNED]["score"]) for r in recs],
               **{s: [read_float(r["signals"][s]["score"]) for r in recs] for s in model.signals}}
    point = {k: v for k, v in operating_point(q, LEARNED, model.threshold).items() if not k.startswith("_")}
    return encode_floats({
        "questions": len(recs), "retrieval_needed": int(q.needed.sum()), "retrieval_helps": int(q.helps.sum()),
        "signals": strip_private(signal_rows(q, columns)),
        "at_threshold": {**aggregate(recs, LEARNED, model.threshold, scorer), **point},
        "never": aggregate(recs, "never", None, scorer)[metric], "always": aggregate(recs, "always", None, scorer)[metric],
    })


def render(held_out: dict[str, Any]) -> str:
    """The held-out table: each column's ROC-AUC (label of the model and the other), gain, and vs best."""
    from benchmarks.report import fmt_ci, vs_best_cell

    lines = ["| signal (held-out) | ROC-AUC, retrieval helps | ROC-AUC, retrieval needed | adaptive gain | vs best other (gain) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['signal']} | {fmt_ci(r['roc_auc_helps'], r['roc_auc_helps_ci'])} | {fmt_ci(r['roc_auc'], r['roc_auc_ci'])} "
              f"| {fmt_ci(r['gain'], r['gain_ci'], signed=True)} | {vs_best_cell(r, False)} |" for r in held_out["signals"]]
    at = held_out["at_threshold"]
    lines.append(f"\nat the chosen threshold: accuracy {fmt_ci(at['accuracy'], at['accuracy_ci'], True)}, retrieval rate "
                 f"{100 * at['retrieval_rate']:.1f} % (random at this rate {100 * at['random_at_rate']:.1f} %, oracle "
                 f"{100 * at['oracle_at_rate']:.1f} %); never {100 * held_out['never']:.1f} %, always {100 * held_out['always']:.1f} %")
    return "\n".join(lines)

