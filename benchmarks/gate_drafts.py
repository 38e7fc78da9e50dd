"""The pieces of a question's gated RAG branch (`benchmarks.policies.gated_branch` assembles them).

Per question: the relevance of each retrieved passage to the question, and a draft with the n most
relevant of them (kept in the retriever's order) for the n the gate keeps — or, in a sweep, for
every 0 < n < k, so that `arag calibrate --relevance-gate` can try any threshold without a model.
n = 0 is the closed-book draft and n = k the ungated RAG draft, both cached already.
"""
from __future__ import annotations

from typing import Any, Callable

from rag.loop.run import ABSTENTION
from retrievers.base import Passage
from retrievers.relevance import RELEVANCE_KEY, RelevanceGate


class GateDrafts:
    def __init__(self, threshold: float, sweep: bool = False, abstain: bool = False) -> None:
        self.gate, self.sweep, self.abstain = RelevanceGate(threshold), sweep, abstain
        self._relevance: dict[tuple, list[float]] = {}  # both the batched warm-up and the record ask

    def subsets(self, question: str, passages: list[Passage]) -> tuple[list[float], dict[int, list[Passage]]]:
        """The passages' relevance, and the passages kept for each n to draft with."""
        key = (question, tuple(p.id for p in passages))
        if key not in self._relevance:
            self._relevance[key] = [p.metadata[RELEVANCE_KEY] for p in self.gate.score(question, passages)]
        relevance = self._relevance[key]
        order = sorted(range(len(passages)), key=lambda i: -relevance[i])
        kept = sum(1 for r in relevance if r >= self.gate.threshold)
        sizes = range(1, len(passages)) if self.sweep else [kept] if 0 < kept < len(passages) else []
        return relevance, {n: [passages[i] for i in sorted(order[:n])] for n in sizes}

    def record(self, question: str, rag: dict[str, Any], passages: list[Passage],
               draft: Callable[[list[Passage]], tuple[Any, dict[str, float]]]) -> dict[str, Any]:
        """The record's ``gate`` entry; writes the passages' relevance into ``rag``. ``draft(kept)``:
        the (cached) draft with those passages and what it cost."""
        relevance, subsets = self.subsets(question, passages)
        rag["relevance"] = relevance
        out: dict[str, Any] = {"threshold": self.gate.threshold, "drafts": {}}
        if self.abstain:
            out["abstention"] = ABSTENTION
        for n, kept in subsets.items():
            g, cost = draft(kept)
            out["drafts"][str(n)] = {"passage_ids": [p.id for p in kept], "text": g.text.strip(), "costs": cost}
        return out
