"""What each trigger catches: fixes (and the ones no other trigger made), confidently-wrong drafts
flagged, and how much the triggers' catches overlap.

The seed question of the project: token confidence sees lexical uncertainty, semantic entropy sees
fluent confabulations, corpus statistics see confident errors about rare entities. The errors that
token confidence by construction cannot see are the *confident* ones, so the section asks, among
closed-book answers that are wrong although the draft was confident, which fraction each trigger
flags at its configured threshold, and whether two triggers flag the same questions (Jaccard).

*Confident* = the closed-book draft's minimum token probability is in the top tercile of the run's
questions (at or above its 2/3 quantile). Why a tercile and not "above token confidence's threshold":
that set is, by definition, the one token confidence does not fire on, so its fraction there would
be 0 whatever the data; a tercile is relative to the model at hand, holds about a third of the
questions whatever the threshold, and lets every trigger, token confidence included, be measured on
the same questions. The tercile cut is taken on the observed sample and kept fixed under resampling;
the intervals resample the questions (`benchmarks.bootstrap`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from benchmarks.bootstrap import estimate
from benchmarks.policies import outcome
from benchmarks.quality import Questions
from corpora.jsonfloat import read_float

MIN_PROB = "token-confidence:min_prob"  # extra signal of every cached record: 1 − min token probability
CONFIDENT_QUANTILE = 2 / 3


def closed_text(record: dict[str, Any]) -> str:
    return record["live"]["never"]["text"] if "live" in record else record["closed_book"]["text"]


def fixes(q: Questions, triggers: Sequence[str]) -> tuple[list[dict], dict[str, dict[str, int]]]:
    """Questions where a trigger fired and its retrieval fixed a wrong closed-book answer; *unique*
    when no other trigger fired there (with the question, for the report)."""
    unique, counts = [], {t: {"fixes": 0, "unique_fixes": 0} for t in triggers}
    for i, r in enumerate(q.records):
        outs = {t: outcome(r, t) for t in triggers}
        fired = [t for t, o in outs.items() if o.fired]
        for t in fired:
            if q.needed[i] and q.quality(r, outs[t].text) > 0:
                counts[t]["fixes"] += 1
                if len(fired) == 1:
                    counts[t]["unique_fixes"] += 1
                    unique.append({"trigger": t, "id": r["id"], "question": r["question"], "answers": r["answers"],
                                   "closed_book": closed_text(r), "answer": outs[t].text})
    return unique, counts


def jaccard(flags: dict[str, np.ndarray], within: np.ndarray) -> dict[str, dict[str, float | None]]:
    """|A ∩ B| / |A ∪ B| of the questions in ``within`` that each pair of triggers flags (None: both flag none)."""
    out: dict[str, dict[str, float | None]] = {}
    for a, fa in flags.items():
        out[a] = {}
        for b, fb in flags.items():
            union = int(np.sum(within & (fa | fb)))
            out[a][b] = int(np.sum(within & fa & fb)) / union if union else None
    return out


def confident_wrong(q: Questions, triggers: Sequence[str]) -> dict[str, Any] | None:
    """Among confidently-wrong closed-book answers, each trigger's flagged fraction (configured
    decision) with its interval, and the pairwise Jaccard overlap of what the triggers flag, there
    and among all wrong answers. None without the closed-book min-prob (multi-step runs) or triggers."""
    if not triggers or any(MIN_PROB not in r.get("extra_signals", {}) for r in q.records):
        return None
    min_prob = 1.0 - np.asarray([read_float(r["extra_signals"][MIN_PROB]) for r in q.records], dtype=float)
    cut = float(np.quantile(min_prob, CONFIDENT_QUANTILE))
    confident = min_prob >= cut
    target = confident & q.needed
    fired = {t: np.asarray([outcome(r, t).fired for r in q.records]) for t in triggers}
    w = q.weights
    rows = {}
    for t, f in fired.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (w @ (target & f)) / (w @ target)
            share_wrong = (w @ (q.needed & f)) / (w @ q.needed)
        rows[t] = {"flagged": int(np.sum(target & f)), **estimate("fraction", share),
                   **estimate("fraction_of_wrong", share_wrong), "fires": float(f.mean()),
                   "fixes": int(np.sum(target & f & q.helps))}
    return {"min_prob_cut": cut, "confident": int(confident.sum()), "questions": int(target.sum()),
            "helps": int(np.sum(target & q.helps)), "triggers": rows,
            "jaccard": jaccard(fired, target), "jaccard_wrong": jaccard(fired, q.needed)}


def summarize_catches(q: Questions, triggers: Sequence[str]) -> dict[str, Any]:
    unique, counts = fixes(q, triggers)
    return {"unique": unique, "counts": counts, "confident_wrong": confident_wrong(q, triggers)}


# -- report ---------------------------------------------------------------------------------------
def _share(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.0f} % [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else f"{100 * value:.0f} %"


def _overlap_table(matrix: dict[str, dict[str, float | None]]) -> list[str]:
    names = list(matrix)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for a in names:
        lines.append(f"| {a} | " + " | ".join("–" if matrix[a][b] is None else f"{matrix[a][b]:.2f}" for b in names) + " |")
    return lines


def catches_section(catches: dict[str, Any]) -> list[str]:
    """The report's "What each trigger catches" section: fixes, confidently-wrong answers, overlap."""
    counts = catches["counts"]
    out = ["## What each trigger catches", "",
           "A *fix*: the trigger fired and the answer is right where the closed-book draft was wrong. *Unique*: no "
           "other trigger fired on that question.", "", "| trigger | fixes | unique fixes |", "|---|---|---|"]
    out += [f"| {t} | {c['fixes']} | {c['unique_fixes']} |" for t, c in counts.items()]
    uniq = catches["unique"]
    if len(counts) > 1 and uniq:
        out += ["", "| trigger | question | closed-book | with retrieval | reference |", "|---|---|---|---|---|"]
        out += [f"| {u['trigger']} | {u['question']} | {u['closed_book'][:60]} | {u['answer'][:60]} | {u['answers'][0]} |"
                for u in uniq[:20]]
    elif len(counts) <= 1:
        out += ["", "(Unique fixes need at least two triggers.)"]
    cw = catches.get("confident_wrong")
    if not cw:
        return out
    out += ["", "### Confidently wrong closed-book answers", "",
            f"*Confident*: the closed-book draft's minimum token probability is in the top tercile of these questions "
            f"(≥ {cw['min_prob_cut']:.3g}; {cw['confident']} questions). {cw['questions']} of them are wrong (retrieval "
            f"would fix {cw['helps']}). *Flags*: the trigger fires there at its configured threshold, with a 95 % "
            "bootstrap interval; *of all wrong*: the same among every wrong closed-book answer, and *fires*: among all "
            "questions, to tell a discriminating trigger from one that fires everywhere (`benchmarks/catches.py`).", "",
            "| trigger | flags confident-wrong | of all wrong | fires | fixes among them |", "|---|---|---|---|---|"]
    out += [f"| {t} | {_share(r['fraction'], r['fraction_ci'])} ({r['flagged']}/{cw['questions']}) | "
            f"{_share(r['fraction_of_wrong'], r['fraction_of_wrong_ci'])} | {100 * r['fires']:.0f} % | {r['fixes']} |"
            for t, r in cw["triggers"].items()]
    if len(cw["triggers"]) > 1:
        out += ["", "Overlap of the confidently-wrong answers each pair flags (Jaccard = both / either; – = neither "
                "flags any; all wrong answers: `catches.confident_wrong.jaccard_wrong` in summary.json):", ""]
        out += _overlap_table(cw["jaccard"])
    return out
