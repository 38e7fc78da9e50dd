"""One entry point per use: `build_retriever` (in memory) and `build_index` (built and saved atomically).

The CLI and the loop pick a retriever by name ("bm25", "faiss", "hybrid") and pass backend
options through; an option the chosen kind does not take is an error, not silently ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from corpora.documents import Document
from retrievers.base import RetrieverError
from retrievers.bm25 import BM25Retriever
from retrievers.dense import DenseRetriever
from retrievers.hybrid import HybridRetriever
from retrievers.store import KINDS, atomic_directory

BM25_OPTIONS = frozenset({"k1", "b", "stopwords", "stemmer"})
DENSE_OPTIONS = frozenset({"embedding_model", "batch_size", "hnsw_m", "ef_construction", "ef_search"})
HYBRID_OPTIONS = frozenset({"rrf_k", "pool"})

AnyRetriever = BM25Retriever | DenseRetriever | HybridRetriever


def _check_options(kind: str, opts: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise RetrieverError(f"option(s) {', '.join(unknown)} do not apply to a {kind} retriever (it takes {', '.join(sorted(allowed))})")


def build_retriever(
    kind: str,
    docs: Sequence[Document],
    *,
    backend: str = "bm25s",
    index_type: str = "flat",
    progress: bool | None = None,
    **opts: Any,
) -> AnyRetriever:
    """Build a retriever in memory.

    ``backend`` ("bm25s" | "rank-bm25") applies to bm25 and hybrid; ``index_type`` ("flat" |
    "hnsw") to faiss and hybrid. ``progress``: None shows bars only when stderr is a terminal.
    Options: bm25 — k1, b, stopwords, stemmer; faiss — embedding_model, batch_size, hnsw_m,
    ef_construction, ef_search; hybrid — both, plus rrf_k and pool.
    """
    if kind == "bm25":
        _check_options(kind, opts, BM25_OPTIONS)
        return BM25Retriever.build(docs, backend=backend, progress=progress, **opts)
    if kind == "faiss":
        _check_options(kind, opts, DENSE_OPTIONS)
        return DenseRetriever.build(docs, index_type=index_type, progress=progress, **opts)
    if kind == "hybrid":
        _check_options(kind, opts, BM25_OPTIONS | DENSE_OPTIONS | HYBRID_OPTIONS)
        return HybridRetriever.build(
            docs,
            bm25_options={"backend": backend, **{k: v for k, v in opts.items() if k in BM25_OPTIONS}},
            dense_options={"index_type": index_type, **{k: v for k, v in opts.items() if k in DENSE_OPTIONS}},
            progress=progress,
            **{k: v for k, v in opts.items() if k in HYBRID_OPTIONS},
        )
    raise RetrieverError(f"unknown retriever kind {kind!r} (use one of {', '.join(KINDS)})")


def build_index(kind: str, docs: Sequence[Document], out_dir: str | Path, **opts: Any) -> AnyRetriever:
    """Build and save to ``out_dir``; an index already there is replaced only once the new one is complete."""
    with atomic_directory(out_dir) as tmp:
        retriever = build_retriever(kind, docs, **opts)
        retriever.write_to(tmp)
    return retriever
