"""What the relevance gate changed: for each ``NAME@gate`` policy beside ``NAME``, the questions it
saved (NAME wrong, gated right — mostly where retrieval hurt: the passages misled the model) and
lost (NAME right, gated wrong — mostly where retrieval helped: a relevant passage was dropped),
the abstentions and the accuracy on the questions it answered (selective accuracy)."""
from __future__ import annotations

from typing import Any, Sequence

from benchmarks.bootstrap import estimate
from benchmarks.policies import gate_base, outcome
from benchmarks.quality import QUALITY, Questions


def gate_rows(q: Questions, policies: Sequence[str]) -> list[dict[str, Any]]:
    """One row per gated policy whose ungated twin is also in ``policies``, with the paired accuracy
    difference gated − ungated and its bootstrap interval (the same resampled questions on both sides)."""
    rows, records = [], q.records
    correct = q.quality
    for gated in (p for p in policies if gate_base(p)[1] and gate_base(p)[0] in policies):
        base = gate_base(gated)[0]
        diff = q.mean(q.values(gated)[:, QUALITY]) - q.mean(q.values(base)[:, QUALITY])
        saved = lost = saved_hurts = lost_helps = abstained = 0
        for r in records:
            plain, gate = outcome(r, base), outcome(r, gated)
            closed, rag = correct(r, outcome(r, "never").text) > 0, correct(r, outcome(r, "always").text) > 0
            a, b = correct(r, plain.text) > 0, correct(r, gate.text) > 0
            abstained += gate.abstained
            if b and not a:
                saved += 1
                saved_hurts += closed and not rag
            elif a and not b:
                lost += 1
                lost_helps += rag and not closed
        rows.append({"policy": gated, "base": base, "threshold": records[0].get("gate", {}).get("threshold"),
                     **estimate("vs_ungated", diff), "saved": saved, "saved_hurts": saved_hurts, "lost": lost,
                     "lost_helps": lost_helps, "abstained": abstained})
    return rows
