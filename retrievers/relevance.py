"""Is a retrieved passage relevant at all? A score comparable across queries, and the gate built on it.

A retriever always returns its k best passages, even when the corpus holds nothing on the question;
its own scores cannot tell (BM25's scale moves with the query's words and their rarity; inner
products and RRF ranks have scales of their own). CRAG grades retrieved documents before using them;
here the grade is the cosine similarity of the all-MiniLM-L6-v2 embeddings of the question and the
passage (title and text, as indexed): one scale for every query and every retriever kind — BM25,
FAISS, hybrid, Elasticsearch.

Why embeddings and not normalised BM25: ``python -m benchmarks.relevance_separation`` compares them
on gold passages (NQ-open-oracle, HotpotQA's supporting paragraphs) and on passages that do or do not
hold the answer (NQ-open over the union corpus); docs/relevance-gate.md has its table.

`RelevanceGate` keeps the passages scoring at least its threshold; when none is left the loop keeps
the step's draft (no regeneration) and the trace says "retrieved; nothing relevant".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from retrievers.base import Passage, RetrieverError
from retrievers.embeddings import DEFAULT_EMBEDDING_MODEL

# Chosen for token-confidence@gate on the even half of 200 NQ-open-oracle questions by `arag calibrate
# --relevance-gate --trigger token-confidence`; docs/relevance-gate.md has the command and the held-out figures.
DEFAULT_GATE_THRESHOLD = 0.3681
RELEVANCE_KEY = "relevance"  # the passage metadata key the gate writes its score under


class RelevanceScorer(Protocol):
    """Scores how relevant each passage is to ``query``, on one scale for all queries."""

    name: str

    def scores(self, query: str, passages: Sequence[Passage]) -> list[float]: ...


def passage_text(p: Passage) -> str:
    """What is compared with the query: title and text, as the retrievers index them."""
    return f"{p.title}\n{p.text}" if p.title else p.text


class EmbeddingRelevance:
    """Cosine similarity of the sentence embeddings of the query and each passage (in [-1, 1])."""

    name = "embedding"

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL) -> None:
        from corpora.extras import require

        require("dense", "the relevance gate", ("sentence_transformers",))  # now, not at the first search
        self.model = model

    def scores(self, query: str, passages: Sequence[Passage]) -> list[float]:
        if not passages:
            return []
        from retrievers.embeddings import load_encoder

        vecs = load_encoder(self.model).encode([query, *(passage_text(p) for p in passages)])
        return [float(x) for x in vecs[1:] @ vecs[0]]


def check_gate_threshold(value: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RetrieverError(f"relevance gate threshold must be a number in [-1, 1], got {value!r}") from None
    if not (math.isfinite(x) and -1.0 <= x <= 1.0):
        raise RetrieverError(f"relevance gate threshold must be a number in [-1, 1] (a cosine similarity), got {value!r}")
    return x


@dataclass
class RelevanceGate:
    """Keep the passages whose relevance to the query is at least ``threshold``, in the retriever's order."""

    threshold: float = DEFAULT_GATE_THRESHOLD
    scorer: RelevanceScorer = field(default_factory=EmbeddingRelevance)

    def __post_init__(self) -> None:
        self.threshold = check_gate_threshold(self.threshold)

    def score(self, query: str, passages: Sequence[Passage]) -> list[Passage]:
        """The passages with their relevance in ``metadata["relevance"]`` (the trace shows it)."""
        return [Passage(p.id, p.text, p.title, p.score, {**p.metadata, RELEVANCE_KEY: s})
                for p, s in zip(passages, self.scorer.scores(query, passages))]

    def keep(self, scored: Sequence[Passage]) -> list[Passage]:
        """Those of `score`'s passages that pass."""
        return [p for p in scored if p.metadata[RELEVANCE_KEY] >= self.threshold]
