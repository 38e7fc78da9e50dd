"""Pick a trigger threshold on one half of the questions and report it on the other half.

Thresholds are chosen in score units (fire when score > cut, cuts midway between observed scores so
no question sits on the boundary) from cached records, then turned back into the trigger's own
``threshold`` setting, the value `arag ask --config FILE` reads. The sweep keeps only the cuts whose
setting the trigger's declaration allows (`declared`), so a declared range (margin's threshold is a
probability gap in [0, 1]) bounds what calibration can choose.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from benchmarks.policies import step_scores
from benchmarks.bootstrap import resample_weights
from benchmarks.quality import Questions, operating_point
from benchmarks.report import Scorer, aggregate, fmt_ci
from benchmarks.runner import BenchError


def split_halves(records: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """Calibration = even positions, held-out = odd positions of the (already shuffled) question order."""
    return list(records[0::2]), list(records[1::2])


def candidate_cuts(scores: Sequence[float]) -> list[float]:
    """Below every score (always fire), midway between neighbours, and the top score (never fire):
    finite values, so each one is a threshold the trigger can be configured with."""
    values = sorted(set(s for s in scores if math.isfinite(s)))
    if not values:
        return [-math.inf]
    mids = [(a + b) / 2 for a, b in zip(values, values[1:])]
    return [values[0] - 1.0] + mids + [values[-1]]


def pick_cut(records: Sequence[dict], policy: str, metric: str, budget: float | None,
             allowed: Callable[[float], bool] = lambda cut: True) -> tuple[float, dict[str, Any]]:
    """The cut with the best accuracy (retrieval rate ≤ ``budget`` when given) among the ``allowed``
    ones; ties → less retrieval."""
    scorer = Scorer()
    best: tuple[float, dict[str, Any]] | None = None
    for cut in filter(allowed, candidate_cuts(step_scores(records, policy))):
        row = aggregate(records, policy, cut, scorer)
        if budget is not None and row["retrieval_rate"] > budget + 1e-12:
            continue
        if best is None or (row[metric], -row["retrieval_rate"]) > (best[1][metric], -best[1]["retrieval_rate"]):
            best = (cut, row)
    if best is None:
        raise BenchError(f"no threshold keeps the retrieval rate within {budget}" if budget is not None
                         else f"no threshold within the range {policy} declares")
    return best


def declared(policy: str, details: dict[str, Any]) -> Callable[[float], bool]:
    """Whether a cut's setting is one the trigger's declaration accepts (its threshold's range, its
    aggregation's choices); a cut that has no setting at all is left for `threshold_setting` to report."""
    from triggers import TriggerConfigError
    from triggers.registry import base_part, get_spec, parametrised

    plain = base_part(policy)
    spec = None if parametrised(plain) else get_spec(plain)

    def allowed(cut: float) -> bool:
        if spec is None or math.isinf(cut):
            return True
        try:
            spec.checked(threshold_setting(policy, cut, details))
        except BenchError:
            return True
        except TriggerConfigError:
            return False
        return True

    return allowed


def threshold_setting(policy: str, cut: float, details: dict[str, Any]) -> dict[str, Any]:
    """The trigger setting equivalent to "fire when score > cut" (see each trigger's score definition)."""
    if math.isinf(cut):
        raise BenchError("no finite scores to calibrate on")
    from triggers.registry import get_spec, inverted, parametrised
    from triggers.token_confidence import AGGREGATION_THRESHOLDS

    inner = inverted(policy)
    if inner is not None:  # -a fires when a's score < −cut: a's own threshold at −cut, inverted
        return threshold_setting(inner, -cut, details.get("inverted", {}).get("details", {}))
    if policy == "token-confidence":  # the threshold's units depend on the aggregation
        agg = details.get("aggregation", "min_prob")
        if agg not in AGGREGATION_THRESHOLDS:
            raise BenchError(f"token-confidence aggregation {agg!r} has no threshold in score units; calibrate another aggregation")
        return {"threshold": AGGREGATION_THRESHOLDS[agg](cut), "aggregation": agg}
    if policy.startswith("learned:"):  # score = the model's probability, fire when above θ
        return {"threshold": cut}
    spec = None if parametrised(policy) else get_spec(policy)
    if spec is None or not any(s.name == "threshold" for s in spec.settings):
        raise BenchError(f"calibration needs a trigger with a threshold setting (and -NAME of one), not {policy!r}")
    return {"threshold": spec.threshold_of(cut)}


def calibrate(records: Sequence[dict], policy: str, metric: str = "contains", budget: float | None = None) -> dict[str, Any]:
    if len(records) < 4:
        raise BenchError("calibration needs at least 4 questions (2 per half)")
    if "signals" not in records[0] or policy not in records[0]["signals"]:
        raise BenchError(f"no cached {policy} signals in these results (single-step runs only)")
    cal, held = split_halves(records)
    details = records[0]["signals"][policy].get("details", {})
    cut, _ = pick_cut(cal, policy, metric, budget, declared(policy, details))
    setting = threshold_setting(policy, cut, details)
    return {
        "policy": policy, "metric": metric, "budget": budget, "cut": cut, "setting": setting,
        "calibration": {"questions": len(cal), **_rows(cal, metric, {"chosen": (policy, cut), "configured": (policy, None)})},
        "held_out": {"questions": len(held), **_rows(held, metric, {"chosen": (policy, cut), "configured": (policy, None),
                                                                    "never": ("never", None), "always": ("always", None)})},
    }


def _rows(records: Sequence[dict], metric: str, wanted: dict[str, tuple[str, float | None]]) -> dict[str, dict[str, Any]]:
    """Each (policy, cut)'s aggregate row with its accuracy interval and random / oracle at its retrieval rate."""
    scorer = Scorer()
    q = Questions(records, lambda r, text: scorer(r, text)[metric], resample_weights(len(records)))
    return {name: {**aggregate(records, policy, cut, scorer),
                   **{k: v for k, v in operating_point(q, policy, cut).items() if not k.startswith("_")}}
            for name, (policy, cut) in wanted.items()}


def render(result: dict[str, Any], configured_threshold: Any) -> str:
    """The calibration table: every row with its 95 % interval, random triggering and the oracle at its rate."""
    m = result["metric"]
    lines = [f"| split | policy | threshold | accuracy ({m}) | retrieval rate | random at this rate | oracle at this rate | "
             "Δ vs random | s/q |", "|---|---|---|---|---|---|---|---|---|"]

    def row(split: str, name: str, thr: Any, r: dict) -> str:
        return (f"| {split} | {name} | {thr} | {fmt_ci(r['accuracy'], r['accuracy_ci'], True)} | {100 * r['retrieval_rate']:.1f} % | "
                f"{100 * r['random_at_rate']:.1f} % | {100 * r['oracle_at_rate']:.1f} % | "
                f"{fmt_ci(r['vs_random'], r['vs_random_ci'], True, signed=True)} | {r['seconds_per_q']:.2f} |")

    thr = f"{result['setting']['threshold']:.4g}"
    p = result["policy"]
    cal, held = result["calibration"], result["held_out"]
    labels = {"chosen": f"{thr} (chosen)", "configured": f"{configured_threshold} (configured)"}
    lines += [row(f"calibration ({cal['questions']})", p, labels[k], cal[k]) for k in ("chosen", "configured")]
    lines += [row(f"held-out ({held['questions']})", p, labels[k], held[k]) for k in ("chosen", "configured")]
    lines += [row(f"held-out ({held['questions']})", k, "–", held[k]) for k in ("never", "always")]
    return "\n".join(lines)
