"""Multi-step runs (``--max-steps > 1``): how many steps each policy's answers took and where its
trigger fired.

Accuracy and cost alone cannot tell a multi-step run from a single-step one: an answer that stops
after its first sentence, or a trigger that only ever fires on the first step, would give the same
rows. These counts, read from the per-step decisions `benchmarks.runner` keeps for every live
policy, show whether the loop really retrieved mid-answer (FLARE's case) or behaved as a one-shot
gate.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

from corpora.jsonfloat import read_float


def step_rows(records: Sequence[dict[str, Any]], policies: Sequence[str]) -> list[dict[str, Any]] | None:
    """One row per policy, or None for single-step records (and live records written before the
    runner kept each step's decision)."""
    if not records or any("steps" not in r.get("live", {}).get(p, {}) for r in records for p in policies):
        return None
    n = len(records)
    rows = []
    for p in policies:
        steps = [r["live"][p]["steps"] for r in records]
        later = [s[1:] for s in steps]
        scores = [read_float(x["score"]) for s in steps for x in s if x["score"] is not None]
        rows.append({
            "policy": p,
            "steps_per_answer": sum(map(len, steps)) / n,
            "multi_step_answers": sum(len(s) > 1 for s in steps),
            "fired_first_step": sum(bool(s) and s[0]["fired"] for s in steps),
            "fired_later_answers": sum(any(x["fired"] for x in s) for s in later),  # fired on step 2 or later
            "fired_later_steps": sum(x["fired"] for s in later for x in s),
            "later_steps": sum(map(len, later)),
            "pre_fired": sum(bool(r["live"][p].get("pre_fired")) for r in records),
            "non_finite_scores": sum(not math.isfinite(x) for x in scores),
            "stop_reasons": dict(Counter(r["live"][p].get("stop_reason") or "?" for r in records).most_common()),
        })
    return rows


def step_table(rows: Sequence[dict[str, Any]], questions: int) -> str:
    """The Markdown table of `step_rows`."""
    lines = ["| policy | steps/answer | answers with > 1 step | fired on step 1 | fired on step ≥ 2 (answers) | "
             "fired steps ≥ 2 / steps ≥ 2 | question check fired | non-finite step scores | how answers ended |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ends = ", ".join(f"{k} {v}" for k, v in r["stop_reasons"].items())
        lines.append(f"| {r['policy']} | {r['steps_per_answer']:.2f} | {r['multi_step_answers']} / {questions} | "
                     f"{r['fired_first_step']} | {r['fired_later_answers']} | {r['fired_later_steps']} / {r['later_steps']} | "
                     f"{r['pre_fired']} | {r['non_finite_scores']} | {ends} |")
    return "\n".join(lines)
