"""Policies derived from cached per-question records: the answer, whether it retrieved, and its cost.

A trigger policy at score cut ``c`` (None: the trigger's own configured decision) answers with
the retrieval-augmented step when the score is above ``c`` and with the closed-book draft
otherwise, and is charged the draft + its signal + (retrieval + regeneration when it fired) —
what `AdaptiveRAG` with ``max_steps=1`` spends (a trigger that searched before deciding has paid
for the search already, and the loop reuses it when the step fires). QuCo's question check keeps its configured
decision in a sweep; the cut then applies to the score of whichever draft the loop would have made.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from benchmarks.costs import add, sub
from corpora.jsonfloat import read_float

SWEEP_POINTS = 21  # score quantiles 0, 5, ..., 100 %
FIXED_POLICIES = ("never", "always")  # no trigger: closed-book only, retrieval every time
GATE_SUFFIX = "@gate"  # ``NAME@gate``: NAME's decisions, its retrieved passages through the relevance gate


def gate_base(policy: str) -> tuple[str, bool]:
    """(the policy without ``@gate``, whether it is gated)."""
    return (policy[: -len(GATE_SUFFIX)], True) if policy.endswith(GATE_SUFFIX) else (policy, False)


def gated_branch(record: dict[str, Any], threshold: float | None = None) -> dict[str, Any]:
    """The RAG branch with the relevance gate at ``threshold`` (None: the run's own): the passages
    scoring at least it, regenerated with; none left → the closed-book draft stands (or the
    abstention, when the run abstains). Costs: the search, and the regeneration when one was made."""
    rag, gate = record["rag"], record.get("gate")
    if gate is None:
        raise KeyError("this run has no relevance gate results (run arag bench with --relevance-gate)")
    theta = gate["threshold"] if threshold is None else threshold
    relevance = rag.get("relevance", [])
    kept = sum(1 for r in relevance if r >= theta)
    if kept == len(relevance):
        return {**rag, "abstained": False}
    if kept == 0:
        text = gate["abstention"] if gate.get("abstention") else record["closed_book"]["text"]
        return {"text": text, "passage_ids": [], "costs": rag["retrieval_costs"], "retrieval_costs": rag["retrieval_costs"],
                "abstained": bool(gate.get("abstention"))}
    draft = gate["drafts"].get(str(kept))
    if draft is None:
        raise KeyError(f"no draft with the {kept} most relevant passages (the run kept drafts for "
                       f"{sorted(gate['drafts'])}; calibrate the gate with --relevance-gate-sweep)")
    return {**draft, "costs": add(rag["retrieval_costs"], draft["costs"]), "retrieval_costs": rag["retrieval_costs"],
            "abstained": False}


@dataclass
class Outcome:
    text: str
    retrieved: bool
    costs: dict[str, float]
    fired: bool
    abstained: bool = False


def _score(s: Any) -> float:
    return float(read_float(s))  # results keep infinite scores as "inf"/"-inf"


def _fires(sig: dict[str, Any], cut: float | None) -> bool:
    return bool(sig["fired"]) if cut is None else _score(sig["score"]) > cut


def _after(sig: dict[str, Any], rag: dict[str, Any]) -> dict[str, float]:
    """The RAG branch's cost after ``sig`` fired: without the search when the trigger made it already."""
    return sub(rag["costs"], rag["retrieval_costs"]) if sig.get("searched") and "retrieval_costs" in rag else rag["costs"]


def outcome(record: dict[str, Any], policy: str, cut: float | None = None) -> Outcome:
    if "live" in record:
        live = record["live"][policy]
        return Outcome(live["text"], live["retrieved"], live["costs"], live["retrieved"], live.get("abstained", False))
    policy, gated = gate_base(policy)
    closed, rag = record["closed_book"], (gated_branch(record) if gated else record["rag"])
    off = rag.get("abstained", False)
    if policy == "never":
        return Outcome(closed["text"], False, closed["costs"], False)
    if policy == "always":
        return Outcome(rag["text"], bool(rag["passage_ids"]), add(closed["costs"], rag["costs"]), True, off)
    pre = record.get("pre", {}).get(policy)
    if pre is not None and pre["signal"]["fired"] and gated:
        raise KeyError(f"{policy}'s question check fired; gated policies with a question check run with --max-steps 2 or more")
    if pre is not None and pre["signal"]["fired"]:
        # the loop retrieved with the question, drafted with those passages, then scored that draft
        step = pre["step"]
        base = add(pre["signal"]["costs"], pre["draft"]["costs"], step["costs"])
        if _fires(step, cut):
            second = pre["rag"]
            return Outcome(second["text"], True, add(base, _after(step, second)), True)
        return Outcome(pre["draft"]["text"], bool(pre["draft"]["passage_ids"]), base, True)
    sig = record["signals"][policy]
    base = add(closed["costs"], sig["costs"], pre["signal"]["costs"] if pre else {})
    if _fires(sig, cut):
        return Outcome(rag["text"], bool(rag["passage_ids"]), add(base, _after(sig, rag)), True, off)
    return Outcome(closed["text"], False, base, False)


def decision_score(record: dict[str, Any], policy: str) -> float:
    """The score a cut of ``policy`` is compared with on this (single-step) question: the
    pre-retrieval draft's when the question check fired, else the closed-book draft's."""
    policy = gate_base(policy)[0]
    pre = record.get("pre", {}).get(policy)
    if pre is not None and pre["signal"]["fired"]:
        return _score(pre["step"]["score"])
    return _score(record["signals"][policy]["score"])


def sweepable(policy: str, records: Sequence[dict[str, Any]]) -> bool:
    """A sweep needs one score scale: single triggers, on single-step (cached) records."""
    from triggers.registry import trigger_parts

    base = gate_base(policy)[0]
    return (base not in FIXED_POLICIES and len(trigger_parts(base)) == 1 and bool(records)
            and "live" not in records[0])


def step_scores(records: Sequence[dict[str, Any]], policy: str) -> list[float]:
    """Every score a cut of ``policy`` is compared with (closed-book drafts and pre-retrieval drafts)."""
    policy = gate_base(policy)[0]
    out = [_score(r["signals"][policy]["score"]) for r in records]
    out += [_score(p["step"]["score"]) for r in records if (p := r.get("pre", {}).get(policy)) and "step" in p]
    return out


def sweep_cuts(scores: Sequence[float], points: int = SWEEP_POINTS) -> list[float]:
    """Cuts at the observed score quantiles, plus −inf (always retrieve); "fire when score > cut"
    at the 100 % quantile never fires."""
    finite = np.asarray([s for s in scores if math.isfinite(s)], dtype=float)
    if finite.size == 0:
        return [-math.inf]
    qs = np.quantile(finite, np.linspace(0.0, 1.0, points))
    return [-math.inf] + sorted(set(float(q) for q in qs))
