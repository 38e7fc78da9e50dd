"""Retrievers: one protocol (`Retriever.retrieve(query, k) -> list[Passage]`); BM25, FAISS and RRF hybrid
(`retrievers.kinds` names them all, Elasticsearch included); indexes saved atomically with a
manifest and reloaded without re-embedding.

The names below are imported on first use (PEP 562), so ``from retrievers.kinds import ...`` or
``from retrievers import Passage`` loads neither bm25s nor faiss.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrievers.base import Passage, Retriever, RetrieverError, check_k
    from retrievers.bm25 import BM25Retriever
    from retrievers.build import build_index, build_retriever, load_index
    from retrievers.dense import DenseRetriever
    from retrievers.embeddings import DEFAULT_EMBEDDING_MODEL
    from retrievers.hybrid import HybridRetriever, reciprocal_rank_fusion
    from retrievers.store import Manifest

_WHERE = {
    "Passage": "base", "Retriever": "base", "RetrieverError": "base", "check_k": "base",
    "BM25Retriever": "bm25",
    "build_index": "build", "build_retriever": "build", "load_index": "build",
    "DenseRetriever": "dense",
    "DEFAULT_EMBEDDING_MODEL": "embeddings",
    "HybridRetriever": "hybrid", "reciprocal_rank_fusion": "hybrid",
    "Manifest": "store",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'retrievers' has no attribute {name!r}")
    return getattr(importlib.import_module(f"retrievers.{_WHERE[name]}"), name)
