"""Every retriever kind by name and where its class lives: the one list that the CLI's choices,
the index loader and the builder read.

A kind joins by adding a line here; its class is imported only when that kind is used, so listing
the kinds (``arag --help``) loads neither bm25s nor faiss, and a BM25-only run never loads faiss.
Index kinds persist in an index directory (`retrievers.store`); service kinds live in a server.
"""
from __future__ import annotations

import importlib

from retrievers.base import RetrieverError

INDEX_KINDS: dict[str, str] = {
    "bm25": "retrievers.bm25:BM25Retriever",
    "faiss": "retrievers.dense:DenseRetriever",
    "hybrid": "retrievers.hybrid:HybridRetriever",
}
SERVICE_KINDS: dict[str, str] = {
    "elasticsearch": "retrievers.elasticsearch.retriever:ElasticsearchRetriever",
}
RETRIEVER_KINDS: tuple[str, ...] = (*INDEX_KINDS, *SERVICE_KINDS)
# kinds whose libraries come with an extra (pyproject.toml); bm25 is in the core install
KIND_EXTRAS: dict[str, str] = {"faiss": "dense", "hybrid": "dense", "elasticsearch": "elasticsearch"}


def check_kind(kind: str, kinds: tuple[str, ...] | dict[str, str] = RETRIEVER_KINDS) -> str:
    """``kind`` if it is one of ``kinds``; otherwise a one-line RetrieverError listing them."""
    if kind not in kinds:
        raise RetrieverError(f"unknown retriever kind {kind!r} (use one of {', '.join(kinds)})")
    return kind


def require_kind(kind: str) -> None:
    """`MissingExtra` (one line) if retriever kind ``kind`` needs an extra that is not installed."""
    if kind in KIND_EXTRAS:
        from corpora.extras import require

        require(KIND_EXTRAS[kind], f"--retriever {kind}")


def retriever_class(kind: str) -> type:
    """The class of retriever kind ``kind``, imported now (its extra checked first)."""
    module, _, name = {**INDEX_KINDS, **SERVICE_KINDS}[check_kind(kind)].partition(":")
    require_kind(kind)
    return getattr(importlib.import_module(module), name)
