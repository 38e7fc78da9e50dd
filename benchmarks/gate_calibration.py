"""Pick the relevance gate's threshold on one half of the questions and report it on the other half.

Like trigger thresholds (`benchmarks.calibration`): calibration = even positions of the question
order, held-out = odd positions. The run must hold ``NAME@gate`` drafts for every number of kept
passages (``arag bench --relevance-gate-sweep``), so any threshold's answers are looked up, not
regenerated. Candidate thresholds lie midway between the observed relevance scores (a passage never
sits on the boundary); the best accuracy wins, ties to fewer LM calls.
"""
from __future__ import annotations

from typing import Any, Sequence

from benchmarks.calibration import _rows, split_halves
from benchmarks.policies import gated_branch
from benchmarks.report import Scorer, aggregate, fmt_ci
from benchmarks.runner import BenchError


def with_gate(records: Sequence[dict], threshold: float) -> list[dict]:
    """The records as if the run's gate had ``threshold``."""
    return [{**r, "gate": {**r["gate"], "threshold": threshold}} for r in records]


def candidate_thresholds(records: Sequence[dict]) -> list[float]:
    values = sorted({x for r in records for x in r["rag"].get("relevance", [])})
    if not values:
        raise BenchError("no relevance scores in these results (run arag bench with NAME@gate policies)")
    return [values[0] - 0.01] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 0.01]


def check_sweep(records: Sequence[dict]) -> None:
    """Every threshold must be answerable from the cache: a draft for each number of kept passages."""
    for r in records:
        if "gate" not in r:
            raise BenchError(f"question {r['id']}: no relevance gate results (NAME@gate policies need --relevance-gate)")
        needed = {str(n) for n in range(1, len(r["rag"].get("relevance", [])))}
        if not needed <= set(r["gate"]["drafts"]):
            raise BenchError(f"question {r['id']}: the run kept gated drafts for {sorted(r['gate']['drafts'])} passages only; "
                             "rerun the benchmark with --relevance-gate-sweep into another --out")


def pick_threshold(records: Sequence[dict], policy: str, metric: str) -> tuple[float, dict[str, Any]]:
    scorer = Scorer()
    best: tuple[float, dict[str, Any]] | None = None
    for theta in candidate_thresholds(records):
        row = aggregate(with_gate(records, theta), policy, None, scorer)
        if best is None or (row[metric], -row["lm_calls_per_q"]) > (best[1][metric], -best[1]["lm_calls_per_q"]):
            best = (theta, row)
    assert best is not None
    return best


def calibrate_gate(records: Sequence[dict], trigger: str, metric: str = "contains") -> dict[str, Any]:
    if len(records) < 4:
        raise BenchError("calibration needs at least 4 questions (2 per half)")
    check_sweep(records)
    policy = f"{trigger}@gate"
    cal, held = split_halves(records)
    theta, _ = pick_threshold(cal, policy, metric)
    configured = records[0]["gate"]["threshold"]
    wanted = {"chosen": (policy, None), "ungated": (trigger, None)}
    return {
        "policy": policy, "metric": metric, "threshold": theta, "configured_threshold": configured,
        "setting": {"relevance_gate": round(theta, 4)},
        "calibration": {"questions": len(cal), **_rows(with_gate(cal, theta), metric, wanted)},
        "held_out": {"questions": len(held), **_rows(with_gate(held, theta), metric, {**wanted, "never": ("never", None),
                                                                                        "always": ("always", None)}),
                     "configured": _rows(held, metric, {"configured": (policy, None)})["configured"],
                     "nothing_relevant": sum(1 for r in with_gate(held, theta) if not gated_branch(r)["passage_ids"])},
    }


def render(result: dict[str, Any]) -> str:
    m = result["metric"]
    lines = [f"| split | policy | gate | accuracy ({m}) | retrieval used | LM calls/q | random at this rate | Δ vs random |",
             "|---|---|---|---|---|---|---|---|"]

    def row(split: str, name: str, gate: str, r: dict) -> str:
        return (f"| {split} | {name} | {gate} | {fmt_ci(r['accuracy'], r['accuracy_ci'], True)} | {100 * r['retrieval_rate']:.1f} % | "
                f"{r['lm_calls_per_q']:.2f} | {100 * r['random_at_rate']:.1f} % | "
                f"{fmt_ci(r['vs_random'], r['vs_random_ci'], True, signed=True)} |")

    p, base = result["policy"], result["policy"].removesuffix("@gate")
    chosen, conf = f"{result['threshold']:.4f} (chosen)", f"{result['configured_threshold']:.4f} (configured)"
    cal, held = result["calibration"], result["held_out"]
    cs, hs = f"calibration ({cal['questions']})", f"held-out ({held['questions']})"
    lines += [row(cs, p, chosen, cal["chosen"]), row(cs, base, "–", cal["ungated"]),
              row(hs, p, chosen, held["chosen"]), row(hs, p, conf, held["configured"]), row(hs, base, "–", held["ungated"]),
              row(hs, "never", "–", held["never"])] + ([] if base == "always" else [row(hs, "always", "–", held["always"])])
    return "\n".join(lines) + (f"\n\nheld-out questions where the chosen gate kept nothing: {held['nothing_relevant']} "
                               f"of {held['questions']}")
