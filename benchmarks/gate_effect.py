"""What the relevance gate changed: for each ``NAME@gate`` policy beside ``NAME``, the questions it
saved (NAME wrong, gated right — mostly where retrieval hurt: the passages misled the model) and
lost (NAME right, gated wrong — mostly where retrieval helped: a relevant passage was dropped),
the abstentions and the accuracy on the questions it answered (selective accuracy)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from benchmarks.policies import gate_base, outcome


def fmt_pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def gate_rows(records: Sequence[dict], policies: Sequence[str], correct: Callable[[dict, str], float]) -> list[dict[str, Any]]:
    """One row per gated policy whose ungated twin is also in ``policies``."""
    rows = []
    for gated in (p for p in policies if gate_base(p)[1] and gate_base(p)[0] in policies):
        base = gate_base(gated)[0]
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
        rows.append({"policy": gated, "base": base, "threshold": records[0].get("gate", {}).get("threshold"), "saved": saved, "saved_hurts": saved_hurts, "lost": lost,
                     "lost_helps": lost_helps, "abstained": abstained})
    return rows


def gate_table(rows: Sequence[dict[str, Any]], policies: Sequence[dict[str, Any]], questions: int, metric: str) -> str:
    by = {r["policy"]: r for r in policies}
    lines = ["| policy | accuracy | vs ungated | saved (of them: retrieval hurt) | lost (of them: retrieval helped) | "
             "retrieval used | abstained | selective accuracy |", "|---|---|---|---|---|---|---|---|"]
    for g in rows:
        p, b = by[g["policy"]], by[g["base"]]
        sel = p.get(f"selective_{metric}")
        lines.append(f"| {g['policy']} | {fmt_pct(p['accuracy'])} | {100 * (p['accuracy'] - b['accuracy']):+.1f} pp | "
                     f"{g['saved']} ({g['saved_hurts']}) | {g['lost']} ({g['lost_helps']}) | {fmt_pct(p['retrieval_rate'])} | "
                     f"{g['abstained']}/{questions} | {fmt_pct(sel) if sel is not None else '–'} |")
    return "\n".join(lines)
