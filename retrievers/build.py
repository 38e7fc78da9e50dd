"""One entry point per use: `build_retriever` (in memory), `build_index` (built and saved
atomically) and `load_index` (a saved index reopened).

The CLI and the loop pick a retriever by name (`retrievers.kinds.INDEX_KINDS`) and pass backend
options through; an option the chosen kind does not take is an error, not silently ignored. Each
kind's class is imported only when that kind is built or loaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from corpora.documents import Document
from retrievers.base import Retriever, RetrieverError
from retrievers.kinds import INDEX_KINDS, check_kind, retriever_class
from retrievers.store import MANIFEST_NAME, atomic_directory, read_documents, read_manifest

if TYPE_CHECKING:
    from retrievers.bm25 import BM25Retriever
    from retrievers.dense import DenseRetriever
    from retrievers.hybrid import HybridRetriever

    AnyRetriever = BM25Retriever | DenseRetriever | HybridRetriever

BM25_OPTIONS = frozenset({"k1", "b", "stopwords", "stemmer"})
DENSE_OPTIONS = frozenset({"embedding_model", "batch_size", "hnsw_m", "ef_construction", "ef_search"})
HYBRID_OPTIONS = frozenset({"rrf_k", "pool"})


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
    cls = retriever_class(check_kind(kind, INDEX_KINDS))
    if kind == "bm25":
        _check_options(kind, opts, BM25_OPTIONS)
        return cls.build(docs, backend=backend, progress=progress, **opts)
    if kind == "faiss":
        _check_options(kind, opts, DENSE_OPTIONS)
        return cls.build(docs, index_type=index_type, progress=progress, **opts)
    _check_options(kind, opts, BM25_OPTIONS | DENSE_OPTIONS | HYBRID_OPTIONS)
    return cls.build(
        docs,
        bm25_options={"backend": backend, **{k: v for k, v in opts.items() if k in BM25_OPTIONS}},
        dense_options={"index_type": index_type, **{k: v for k, v in opts.items() if k in DENSE_OPTIONS}},
        progress=progress,
        **{k: v for k, v in opts.items() if k in HYBRID_OPTIONS},
    )


def build_index(kind: str, docs: Sequence[Document], out_dir: str | Path, **opts: Any) -> AnyRetriever:
    """Build and save to ``out_dir``; an index already there is replaced only once the new one is complete."""
    with atomic_directory(out_dir) as tmp:
        retriever = build_retriever(kind, docs, **opts)
        retriever.write_to(tmp)
    return retriever


def load_index(
    directory: str | Path, *, expected_fingerprint: str | None = None, embedding_model: str | None = None
) -> Retriever:
    """Reopen a saved index without re-embedding; refuse one built from another corpus or model.

    ``expected_fingerprint`` is `corpora.documents.fingerprint` of the corpus the caller means to
    search; ``embedding_model`` the model it expects (dense kinds only).
    """
    path = Path(directory)
    manifest = read_manifest(path)
    if expected_fingerprint is not None and manifest.corpus_fingerprint != expected_fingerprint:
        raise RetrieverError(
            f"{path}: index was built from a different corpus (fingerprint {manifest.corpus_fingerprint}, "
            f"expected {expected_fingerprint}); rebuild it"
        )
    if embedding_model is not None and manifest.kind != "bm25" and manifest.embedding_model != embedding_model:
        raise RetrieverError(
            f"{path}: index was embedded with {manifest.embedding_model!r}, not {embedding_model!r}; rebuild it"
        )
    docs = read_documents(path, manifest)
    try:
        return retriever_class(manifest.kind).from_saved(path, manifest, docs)
    except RetrieverError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a hand-edited option, e.g. "k1": "abc"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RetrieverError(f"{path / MANIFEST_NAME}: invalid index options {manifest.options} ({first}); rebuild the index") from None
