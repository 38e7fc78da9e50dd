"""Choose the band of a cascade trigger (`triggers/cascade.py`) from cached benchmark records.

Both members' step scores are cached per question by `arag bench` (the run computes CHEAP and COSTLY
on every question, once), so any band's cascade can be derived without running it: outside the band
CHEAP's side decides (score ∓inf), inside it COSTLY's score (the same composite score the trigger
returns). The choice, on the calibration half (even positions, as `arag calibrate` splits):

    among the bands [lo, hi] (edges: midpoints between observed CHEAP scores, plus one below all and
    the highest) that send at most ``share`` of the questions to COSTLY, the one whose cascade has the
    highest adaptive gain (its sweep over COSTLY's cut, `benchmarks.gain`); ties → fewer COSTLY calls.

The held-out half then reports the cascade's gain against COSTLY alone and CHEAP alone (bootstrap
intervals, paired differences), the share of questions where COSTLY was computed, the LM calls of
the decisions, and whether the cascade's gain reaches COSTLY's interval (the issue's bar: within
COSTLY's gain interval at ≤ 0.5× its LM calls).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from benchmarks.bootstrap import resample_weights
from benchmarks.calibration import candidate_cuts, split_halves
from benchmarks.costs import add, zero
from benchmarks.gain import adaptive_gain
from benchmarks.quality import QUALITY, RET, Questions, signal_rows, strip_private
from benchmarks.report import Scorer, aggregate
from benchmarks.runner import BenchError
from corpora.jsonfloat import encode_floats, read_float

CASCADE = "cascade"
DEFAULT_SHARE = 0.5


def members(policy: str) -> tuple[str, str]:
    cheap, costly = policy.split(":", 1)[1].split(",")
    return cheap.strip(), costly.strip()


def composite(cheap: np.ndarray, costly: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The cascade's score per question: −inf below the band, +inf above, COSTLY's score inside (NaN: inside)."""
    out = np.asarray(costly, dtype=float).copy()
    out[cheap < lo] = -np.inf
    out[cheap > hi] = np.inf
    return out


def inside(cheap: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ~((cheap < lo) | (cheap > hi))


def _scores(records: Sequence[dict], name: str) -> np.ndarray:
    if name not in records[0].get("signals", {}):
        raise BenchError(f"no cached {name} signals in these results (single-step runs only)")
    return np.asarray([read_float(r["signals"][name]["score"]) for r in records], dtype=float)


def choose_band(records: Sequence[dict], cheap: str, costly: str, quality, share: float = DEFAULT_SHARE) -> dict[str, Any]:
    """The band with the best gain among those computing COSTLY for ≤ ``share`` of ``records``."""
    q = Questions(records, quality, resample_weights(len(records), 0))
    c, k = _scores(records, cheap), _scores(records, costly)
    low, high = q.never[:, [RET, QUALITY]], q.always[:, [RET, QUALITY]]
    edges = candidate_cuts(c)
    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    for i, lo in enumerate(edges):
        for hi in edges[i:]:
            frac = float(inside(c, lo, hi).mean())
            if frac > share + 1e-12:
                continue
            gain = float(adaptive_gain(composite(c, k, lo, hi), low, high, q.closed, q.rag, q.weights)["gain"][0])
            if np.isnan(gain):
                continue
            if best is None or (gain, -frac) > best[0]:
                best = ((gain, -frac), {"band_lo": float(lo), "band_hi": float(hi), "gain": gain, "costly_share": frac})
    if best is None:
        raise BenchError("no band is defined on these questions: retrieval changes no answer on the calibration half")
    return best[1]


def with_cascade(records: Sequence[dict], cheap: str, costly: str, lo: float, hi: float) -> list[dict]:
    """Copies of the records with the cascade as a cached signal: CHEAP's cost, plus COSTLY's inside the band."""
    out = []
    for r in records:
        c, k = r["signals"][cheap], r["signals"][costly]
        cs = read_float(c["score"])
        if inside(np.asarray([cs]), lo, hi)[0]:
            sig = {"score": k["score"], "fired": k["fired"], "costs": add(c["costs"], k["costs"]),
                   "searched": bool(c.get("searched") or k.get("searched"))}
        else:
            sig = {"score": "inf" if cs > hi else "-inf", "fired": bool(cs > hi), "costs": add(c["costs"], zero()),
                   "searched": bool(c.get("searched"))}
        out.append({**r, "signals": {**r["signals"], CASCADE: sig}})
    return out


def calibrate_cascade(records: Sequence[dict], policy: str, metric: str = "contains", share: float = DEFAULT_SHARE) -> dict[str, Any]:
    """Choose the band on the even positions and report it on the odd ones (module docstring)."""
    if len(records) < 4:
        raise BenchError("calibration needs at least 4 questions (2 per half)")
    if not 0.0 <= share <= 1.0:
        raise BenchError(f"--costly-share is a fraction of questions in [0, 1], got {share}")
    cheap, costly = members(policy)
    cal, held = split_halves(records)
    scorer = Scorer()
    quality = lambda r, text: scorer(r, text)[metric]  # noqa: E731
    band = choose_band(cal, cheap, costly, quality, share)
    lo, hi = band["band_lo"], band["band_hi"]
    recs = with_cascade(held, cheap, costly, lo, hi)
    q = Questions(recs, quality, resample_weights(len(recs)))
    c, k = _scores(held, cheap), _scores(held, costly)
    columns = {policy: composite(c, k, lo, hi).tolist(), costly: k.tolist(), cheap: c.tolist()}
    rows = strip_private(signal_rows(q, columns))
    by = {r["signal"]: r for r in rows}

    def decision_calls(name: str) -> float:
        return float(np.mean([r["signals"][name]["costs"]["lm_calls"] for r in recs]))

    casc, cost = by.get(policy, {}), by.get(costly, {})
    defined = casc.get("gain") is not None and cost.get("gain_ci") is not None
    reaches = casc["gain"] >= cost["gain_ci"][0] if defined else None  # None: no gain where retrieval changes nothing
    held_out = {
        "questions": len(recs), "costly_share": float(inside(c, lo, hi).mean()), "signals": rows,
        "decision_lm_calls_per_q": {policy: decision_calls(CASCADE), costly: decision_calls(costly), cheap: decision_calls(cheap)},
        "configured": {policy: aggregate(recs, CASCADE, None, scorer), costly: aggregate(recs, costly, None, scorer)},
        "gain_within_costly_ci": reaches,
    }
    return encode_floats({"policy": policy, "metric": metric, "costly_share_limit": share,
                          "setting": {"band_lo": lo, "band_hi": hi},
                          "calibration": {"questions": len(cal), "gain": band["gain"], "costly_share": band["costly_share"]},
                          "held_out": held_out})


def render(result: dict[str, Any]) -> str:
    from benchmarks.report import fmt_ci, vs_best_cell

    held = result["held_out"]
    calls = held["decision_lm_calls_per_q"]
    lines = [f"band [{result['setting']['band_lo']:.4g}, {result['setting']['band_hi']:.4g}] on {members(result['policy'])[0]}'s score; "
             f"COSTLY computed for {100 * result['calibration']['costly_share']:.0f} % of the calibration half "
             f"({result['calibration']['questions']} questions), {100 * held['costly_share']:.0f} % of the held-out half",
             "", "| held-out | adaptive gain | ROC-AUC, retrieval helps | decision LM calls/q | vs best other (gain) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['signal']} | {fmt_ci(r['gain'], r['gain_ci'], signed=True)} | {fmt_ci(r['roc_auc_helps'], r['roc_auc_helps_ci'])} "
              f"| {calls.get(r['signal'], 0):.2f} | {vs_best_cell(r, False)} |" for r in held["signals"]]
    within = held["gain_within_costly_ci"]
    lines.append("\ncascade gain within COSTLY's interval: " + ("undefined (retrieval changes no held-out answer, or too few do)"
                                                             if within is None else "yes" if within else "no"))
    return "\n".join(lines)
