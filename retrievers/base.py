"""The one retrieval protocol every backend satisfies, and the passage type it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable


class RetrieverError(ValueError):
    """A user-facing retrieval problem (bad k, missing or mismatched index, unreachable server).

    The CLI prints these as one line and exits 2; anything else is a bug and keeps its traceback.
    """


@dataclass(frozen=True)
class Passage:
    """A scored passage. ``score`` is backend-specific (BM25, inner product, RRF): compare within one retriever only."""

    id: str
    text: str
    title: str = ""
    score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "score": self.score, "metadata": self.metadata}


@runtime_checkable
class Retriever(Protocol):
    """Anything that maps a query to its k best passages, best first."""

    def retrieve(self, query: str, k: int = 5) -> list[Passage]: ...


def retrieve_many(retriever: Retriever, queries: Sequence[str], k: int = 5) -> list[list[Passage]]:
    """The k best passages of each query: in one search where the retriever has ``retrieve_many``
    (FAISS embeds and searches all queries at once), else one ``retrieve`` per query (bm25s itself
    scores one query at a time, so BM25 gains nothing from a batch)."""
    many = getattr(retriever, "retrieve_many", None)
    return many(list(queries), k) if many is not None else [retriever.retrieve(q, k) for q in queries]


def check_k(k: int) -> int:
    """Reject k <= 0 (and non-integers) with a message that names the problem."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise RetrieverError(f"k must be a positive integer, got {k!r}")
    return k
