"""The honest comparison: every policy and signal against random triggering and the oracle, with
bootstrap 95 % intervals over questions (`benchmarks.bootstrap`).

Labels, per question, from the closed-book answer (``never``) and the retrieval-augmented one
(``always``) under the report's metric:
- **retrieval needed**: the closed-book answer is wrong (metric 0) — AdaRAGUE's label;
- **retrieval helps**: it is wrong and the retrieval-augmented answer is right (metric > 0).

Policies: accuracy, the random line and the oracle at the policy's retrieval rate, the paired
difference to random at that rate and to the best other policy, and, for threshold triggers on
cached single-step records, the adaptive gain of their own sweep (`benchmarks.gain`). Signals (each
cached score, used as "retrieve with always's answer when score > cut"): ROC-AUC and PRR for both
labels, adaptive gain, and the paired gain difference to the best other signal.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.bootstrap import estimate, point
from benchmarks.gain import adaptive_gain, area, oracle_curve, sweep
from benchmarks.metrics import prr, weighted_roc_auc
from benchmarks.policies import FIXED_POLICIES, decision_score, gate_base, outcome, sweepable
from corpora.jsonfloat import read_float

# Below this many events (questions where retrieval changes the answer: helps + hurts) no gain is
# reported: the oracle is then one or two questions, a trigger that happens to order them right scores
# ±1, and a percentile bootstrap over so few events collapses to a point.
MIN_EVENTS = 10

# per-question value columns: retrieved (0/1), LM calls, generated tokens, quality
AXES = ("retrieval_rate", "lm_calls_per_q", "generated_tokens_per_q")
RET, QUALITY = 0, 3


class Questions:
    """Per-question values of never's and always's answers, the two labels, and the resampling weights."""

    def __init__(self, records: Sequence[dict], quality: Callable[[dict, str], float], weights: np.ndarray,
                 min_events: int = 0) -> None:
        """``min_events``: below this many helps + hurts no gain is given (reports use `MIN_EVENTS`;
        fitting and band choice, which only compare candidates on the same questions, use 0)."""
        self.records, self.quality, self.weights, self.min_events = records, quality, weights, min_events
        self.never = self.values("never")
        self.always = self.values("always")
        self.closed, self.rag = self.never[:, QUALITY], self.always[:, QUALITY]
        self.needed = self.closed == 0
        self.helps = self.needed & (self.rag > 0)
        self.hurts = (self.closed > 0) & (self.rag == 0)

    def values(self, policy: str, cut: float | None = None, records: Sequence[dict] | None = None) -> np.ndarray:
        """(n, 4) values of ``policy``'s answers (at ``cut``; None = its configured decision)."""
        rows = []
        for r in self.records if records is None else records:
            o = outcome(r, policy, cut)
            rows.append([float(o.retrieved), o.costs["lm_calls"], o.costs["generated_tokens"], self.quality(r, o.text)])
        return np.asarray(rows, dtype=float)

    def mean(self, column: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = self.weights if weights is None else weights
        return w @ column / w.sum(axis=1)

    def references(self) -> dict[str, Any]:
        ox, oy = oracle_curve(self.closed, self.rag, self.weights[:1])
        never, always = self.mean(self.closed), self.mean(self.rag)
        return {"questions": len(self.records), "retrieval_needed": int(self.needed.sum()), "retrieval_helps": int(self.helps.sum()),
                "retrieval_hurts": int(self.hurts.sum()), **estimate("never", never), **estimate("always", always),
                "random_area": point((never + always) / 2), "oracle_area": float(area(ox, oy)[0])}

    def oracle_at(self, rate: float) -> float:
        ox, oy = oracle_curve(self.closed, self.rag, self.weights[:1])
        return float(np.interp(rate, ox[0], oy[0]))


def _two_states(q: Questions, policy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score, values when it does not fire (cut +inf) and when it fires (cut −inf), per question."""
    score = np.asarray([decision_score(r, policy) for r in q.records], dtype=float)
    return score, q.values(policy, np.inf), q.values(policy, -np.inf)


def _gain(q: Questions, score: np.ndarray, low: np.ndarray, high: np.ndarray, idx: np.ndarray | None = None) -> dict[str, Any]:
    sel = slice(None) if idx is None else idx
    events = int(q.helps[sel].sum() + q.hurts[sel].sum())
    if events < q.min_events:
        return {"gain": None, "gain_ci": None, "area_above_random": None, "area_above_random_ci": None,
                "gain_note": too_few(events)}
    w = q.weights[:, sel]
    g = adaptive_gain(score, low[:, [RET, QUALITY]], high[:, [RET, QUALITY]], q.closed[sel], q.rag[sel], w)
    return {"_gain": g["gain"], **estimate("gain", g["gain"]), **estimate("area_above_random", g["area"] - g["random_area"])}


def too_few(events: int) -> str:
    return f"too few events ({events})"


def _versus_best(rows: list[dict], key: str, name: str) -> None:
    """Each row's paired difference in ``key`` to the best other row (by observed value)."""
    for row in rows:
        others = [o for o in rows if o is not row and o.get(key) is not None and f"_{key}" in o]
        if row.get(key) is None or not others:
            continue
        best = max(others, key=lambda o: o[key])
        row["vs_best"] = {name: best[name], **estimate("diff", row[f"_{key}"] - best[f"_{key}"])}


def operating_point(q: Questions, policy: str, cut: float | None = None) -> dict[str, Any]:
    """Accuracy of ``policy`` at ``cut`` (None: configured) with its interval, random and the oracle at
    its retrieval rate, and the paired difference to random (``_accuracy``: the resampled accuracies)."""
    never, always = q.mean(q.closed), q.mean(q.rag)
    vals = q.values(policy, cut)
    acc, rate = q.mean(vals[:, QUALITY]), q.mean(vals[:, RET])
    random = never + rate * (always - never)
    return {**estimate("accuracy", acc), "_accuracy": acc, "random_at_rate": point(random),
            "oracle_at_rate": q.oracle_at(float(rate[0])), **estimate("vs_random", acc - random)}


def policy_rows(q: Questions, policies: Sequence[str], base_rows: list[dict]) -> list[dict]:
    """``base_rows`` (configured decisions) with intervals, references at the same rate, and gain."""
    out = []
    for policy, base in zip(policies, base_rows):
        row = {**base, **operating_point(q, policy)}
        if sweepable(policy, q.records):
            row.update(_gain(q, *_two_states(q, policy)))
        out.append(row)
    _versus_best(out, "accuracy", "policy")
    return out


def signal_columns(records: Sequence[dict], policies: Sequence[str]) -> dict[str, list[float | None]]:
    """Every cached score by name: each trigger's step score (multi-step: the first step's), QuCo's
    question check, and the free token-confidence aggregations not already listed."""
    columns: dict[str, list[float | None]] = {}
    live = "live" in records[0]
    for p in policies:
        if p in FIXED_POLICIES or gate_base(p)[1]:  # a gated policy's signal is its base's
            continue
        if live:
            columns[p] = [read_float((r["live"][p]["first_step"] or {}).get("score")) for r in records]
        else:
            columns[p] = [read_float(r["signals"][p]["score"]) for r in records]
            if any(p in r.get("pre", {}) for r in records):
                columns[f"{p} (question check)"] = [read_float(r["pre"][p]["signal"]["score"]) if p in r.get("pre", {}) else None
                                                    for r in records]
    if not live:
        for name in records[0].get("extra_signals", {}):
            values = [read_float(r["extra_signals"][name]) for r in records]
            if values not in columns.values():  # e.g. the token-confidence policy's own aggregation
                columns[name] = values
    return columns


def signal_rows(q: Questions, columns: dict[str, list[float | None]]) -> list[dict]:
    """ROC-AUC / PRR for both labels and adaptive gain of each score; NaN and missing scores left out."""
    rows = []
    for name, raw in columns.items():
        scores = np.asarray([np.nan if s is None else s for s in raw], dtype=float)
        idx = np.flatnonzero(~np.isnan(scores))
        if idx.size == 0:
            continue
        s, w = scores[idx], q.weights[:, idx]
        needed, helps = q.needed[idx], q.helps[idx]
        row = {"signal": name, "n": int(idx.size), "errors": int(needed.sum()), "helps": int(helps.sum()),
               **estimate("roc_auc", weighted_roc_auc(s, needed, w)),
               **estimate("roc_auc_helps", weighted_roc_auc(s, helps, w)),
               "prr": prr(s, q.closed[idx]), "prr_helps": prr(s, 1.0 - helps),
               **_gain(q, s, q.never[idx], q.always[idx], idx), "_n": idx.size}
        rows.append(row)
    full = [r for r in rows if r["_n"] == len(q.records)]  # pairs need the same questions
    _versus_best(full, "gain", "signal")
    return rows


def curves(q: Questions, policies: Sequence[str], columns: dict[str, list[float | None]]) -> dict[str, dict[str, list[float]]]:
    """Observed curves for the plots, on every axis: the random line, the oracle's, each sweepable
    policy's (its own answers, all cuts, from never to always) and each other signal's scored on
    every question (as a trigger with always's answer; key ``signal:NAME``)."""
    ones = q.weights[:1]
    start, end = q.never.mean(axis=0), q.always.mean(axis=0)
    start[RET], end[RET] = 0.0, 1.0

    def as_dict(points: np.ndarray) -> dict[str, list[float]]:
        return {**{a: points[:, i].tolist() for i, a in enumerate(AXES)}, "accuracy": points[:, QUALITY].tolist()}

    def pinned(score: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, list[float]]:
        return as_dict(np.concatenate([start[None], sweep(score, low, high, ones)[0], end[None]]))

    out = {"random": as_dict(np.stack([start, end])),
           "oracle": as_dict(sweep(q.rag - q.closed, q.never, q.always, ones)[0])}
    for p in policies:
        if sweepable(p, q.records):
            out[p] = pinned(*_two_states(q, p))
    for name, raw in columns.items():
        if name not in out and all(v is not None for v in raw):
            out[f"signal:{name}"] = pinned(np.asarray(raw, dtype=float), q.never, q.always)
    return out


def strip_private(rows: list[dict]) -> list[dict]:
    """The rows without their resampling arrays (keys starting with ``_``)."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
