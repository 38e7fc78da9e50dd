"""Dense retrieval: FAISS inner-product search over normalised sentence embeddings of title + text.

Flat (exact) search is the default: at 100k x 384 one query costs a few milliseconds, and it has
no recall loss to tune away. HNSW (`index_type="hnsw"`) trades a little recall for sub-linear
search on corpora where flat becomes slow. The index file stores the vectors, so reloading never
re-embeds; the manifest names the model, because queries must be embedded by the same one.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Sequence

import numpy as np

from corpora.documents import Document, fingerprint
from corpora.extras import require
from retrievers.base import Passage, RetrieverError, check_k
from retrievers.embeddings import DEFAULT_EMBEDDING_MODEL, Encoder, load_encoder
from retrievers.inputs import check_documents, check_query, indexed_text, progress_enabled, to_passage
from retrievers.store import IndexDirectory, Manifest, damaged

INDEX_TYPES = ("flat", "hnsw")
INDEX_NAME = "index.faiss"

if TYPE_CHECKING:
    import faiss


def _faiss() -> ModuleType:
    """faiss, imported when first used: `retrievers.hybrid`'s constants (read by the Elasticsearch
    retriever) must not need the dense extra."""
    return require("dense", "--retriever faiss", ["faiss"])


def new_index(index_type: str, dim: int, *, hnsw_m: int = 32, ef_construction: int = 200) -> faiss.Index:
    """An empty inner-product index: on unit vectors, inner product ranks like cosine similarity."""
    faiss = _faiss()
    if index_type == "flat":
        return faiss.IndexFlatIP(dim)
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        return index
    raise RetrieverError(f"unknown FAISS index type {index_type!r} (use one of {', '.join(INDEX_TYPES)})")


class DenseRetriever(IndexDirectory):
    """Scores are cosine similarities in [-1, 1]."""

    kind = "faiss"

    def __init__(
        self,
        docs: list[Document],
        index: faiss.Index,
        encoder: Encoder,
        *,
        index_type: str,
        corpus_fingerprint: str,
        options: dict | None = None,
    ):
        if index.ntotal != len(docs):
            raise RetrieverError(f"FAISS index holds {index.ntotal} vectors for {len(docs)} documents")
        if index.d != encoder.dim:
            raise RetrieverError(f"FAISS index has dimension {index.d}, embedding model {encoder.name!r} gives {encoder.dim}")
        self.docs = docs
        self.index = index
        self.encoder = encoder
        self.index_type = index_type
        self.corpus_fingerprint = corpus_fingerprint
        self.options = dict(options or {})

    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        *,
        index_type: str = "flat",
        embedding_model: str = DEFAULT_EMBEDDING_MODEL,
        batch_size: int = 64,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        progress: bool | None = None,
    ) -> "DenseRetriever":
        docs = check_documents(docs)
        if index_type not in INDEX_TYPES:
            raise RetrieverError(f"unknown FAISS index type {index_type!r} (use one of {', '.join(INDEX_TYPES)})")
        encoder = load_encoder(embedding_model)
        vectors = encoder.encode([indexed_text(d) for d in docs], batch_size=batch_size, progress=progress_enabled(progress))
        return cls.from_embeddings(
            docs, vectors, encoder, index_type=index_type, hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search
        )

    @classmethod
    def from_embeddings(
        cls,
        docs: list[Document],
        vectors: np.ndarray,
        encoder: Encoder,
        *,
        index_type: str = "flat",
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
    ) -> "DenseRetriever":
        """Index vectors already computed (by ``encoder``, normalised) — e.g. shared between two index types."""
        index = new_index(index_type, vectors.shape[1], hnsw_m=hnsw_m, ef_construction=ef_construction)
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        options = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search} if index_type == "hnsw" else {}
        return cls(docs, index, encoder, index_type=index_type, corpus_fingerprint=fingerprint(docs), options=options)

    @property
    def num_documents(self) -> int:
        return len(self.docs)

    @property
    def embedding_model(self) -> str:
        return self.encoder.name

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search for query vectors; HNSW explores at least k candidates so it can return k.

        A single query runs on one OpenMP thread: FAISS cannot split one flat query usefully, and
        its idle threads spin — on 2 busy cores a 100k x 384 query took 80 ms with 2 threads, 29
        ms with 1 (benchmarks/perf_retrieval.py). Batches keep all threads.
        """
        faiss = _faiss()
        k = min(k, self.num_documents)
        params = None
        if self.index_type == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(int(self.options.get("ef_search", 128)), k))
        if len(vectors) > 1:
            return self.index.search(vectors, k, params=params)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # per calling thread (an OpenMP ICV), restored below
        try:
            return self.index.search(vectors, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)

    def retrieve(self, query: str, k: int = 5) -> list[Passage]:
        """The k most similar passages (all of them when k exceeds the corpus, for flat), best first."""
        return self.retrieve_many([query], k)[0]

    def retrieve_many(self, queries: Sequence[str], k: int = 5) -> list[list[Passage]]:
        """`retrieve` for each query, the queries embedded in one batch and searched in one FAISS call
        (a query's scores may differ from its `retrieve`'s in the last float bits: padding)."""
        check_k(k)
        if not queries:
            return []
        vectors = self.encoder.encode([check_query(q) for q in queries])
        scores, ids = self.search(vectors, k)
        return [[to_passage(self.docs[i], s) for s, i in zip(row_s, row_i) if i >= 0] for row_s, row_i in zip(scores, ids)]

    def manifest(self) -> Manifest:
        return Manifest(
            kind=self.kind,
            index_type=self.index_type,
            embedding_model=self.embedding_model,
            corpus_fingerprint=self.corpus_fingerprint,
            num_documents=self.num_documents,
            options={"dimension": self.index.d, **self.options},
        )

    def write_payload(self, path: Path) -> None:
        _faiss().write_index(self.index, str(path / INDEX_NAME))

    @classmethod
    def from_saved(cls, path: Path, manifest: Manifest, docs: list[Document]) -> "DenseRetriever":
        if manifest.index_type not in INDEX_TYPES:
            raise RetrieverError(f"{path}: unknown FAISS index type {manifest.index_type!r} in manifest")
        if not manifest.embedding_model:
            raise RetrieverError(f"{path}: manifest names no embedding model")
        encoder = load_encoder(manifest.embedding_model)
        if manifest.options.get("dimension", encoder.dim) != encoder.dim:
            raise RetrieverError(
                f"{path}: index vectors have dimension {manifest.options['dimension']}, "
                f"embedding model {encoder.name!r} gives {encoder.dim}; rebuild the index"
            )
        ipath = path / INDEX_NAME
        if not ipath.is_file():
            raise RetrieverError(f"{path}: index is incomplete (no {INDEX_NAME})")
        try:
            index = _faiss().read_index(str(ipath))
        except RuntimeError as exc:
            raise damaged(path, exc) from None
        options = {k: v for k, v in manifest.options.items() if k != "dimension"}
        try:
            return cls(docs, index, encoder, index_type=manifest.index_type, corpus_fingerprint=manifest.corpus_fingerprint, options=options)
        except RetrieverError as exc:
            raise RetrieverError(f"{path}: {exc}") from None
