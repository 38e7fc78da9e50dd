"""Hybrid retrieval by reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009).

RRF adds 1 / (rrf_k + rank) over the ranked lists of each retriever. It needs no score
calibration — BM25 values and cosine similarities live on unrelated scales — and rrf_k = 60 is the
paper's constant. Each retriever returns max(k, pool) candidates so a passage ranked well by one
list and just outside the top k of the other still collects both contributions.

The pool is 10, not deeper, by measurement: on NQ-open-oracle (recall of the gold passage at
1/5/10) pools of 10 / 20 / 50 / 1000 give 0.842/0.985/0.997, 0.845/0.977/0.994,
0.846/0.971/0.986, 0.846/0.970/0.986 — a deep pool lets passages that both lists rank mediocre
outvote one that a single list ranks first (benchmarks/retrieval_recall.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from corpora.documents import Document
from retrievers.base import Passage, RetrieverError, check_k
from retrievers.bm25 import BM25Retriever
from retrievers.dense import DenseRetriever
from retrievers.inputs import check_query
from retrievers.store import IndexDirectory, Manifest, read_manifest, write_manifest

DEFAULT_RRF_K = 60
DEFAULT_POOL = 10


def reciprocal_rank_fusion(ranked: dict[str, list[Passage]], rrf_k: int = DEFAULT_RRF_K) -> list[Passage]:
    """Fuse named ranked lists; each passage's metadata gains ``rrf_ranks`` {list name: 1-based rank}.

    Equal fused scores keep the order in which passages were first seen (lists in the given order).
    """
    fused: dict[str, float] = {}
    first: dict[str, Passage] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, passages in ranked.items():
        for rank, p in enumerate(passages, 1):
            fused[p.id] = fused.get(p.id, 0.0) + 1.0 / (rrf_k + rank)
            first.setdefault(p.id, p)
            ranks.setdefault(p.id, {})[name] = rank
    order = sorted(fused, key=lambda pid: -fused[pid])  # stable: ties stay in first-seen order
    return [
        Passage(id=pid, text=first[pid].text, title=first[pid].title, score=fused[pid],
                metadata={**first[pid].metadata, "rrf_ranks": ranks[pid]})
        for pid in order
    ]


class HybridRetriever(IndexDirectory):
    """BM25 + FAISS over the same documents, fused by RRF. Scores are RRF sums (at most 2 / (rrf_k + 1))."""

    kind = "hybrid"

    def __init__(self, sparse: BM25Retriever, dense: DenseRetriever, *, rrf_k: int = DEFAULT_RRF_K, pool: int = DEFAULT_POOL):
        if sparse.corpus_fingerprint != dense.corpus_fingerprint:
            raise RetrieverError("hybrid retrieval needs BM25 and FAISS indexes of the same corpus (fingerprints differ)")
        if rrf_k < 0 or pool < 1:
            raise RetrieverError(f"RRF needs rrf_k >= 0 and pool >= 1, got rrf_k={rrf_k}, pool={pool}")
        self.sparse = sparse
        self.dense = dense
        self.rrf_k = rrf_k
        self.pool = pool

    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        *,
        bm25_options: dict | None = None,
        dense_options: dict | None = None,
        rrf_k: int = DEFAULT_RRF_K,
        pool: int = DEFAULT_POOL,
        progress: bool | None = None,
    ) -> "HybridRetriever":
        sparse = BM25Retriever.build(docs, progress=progress, **(bm25_options or {}))
        dense = DenseRetriever.build(sparse.docs, progress=progress, **(dense_options or {}))
        return cls(sparse, dense, rrf_k=rrf_k, pool=pool)

    @property
    def docs(self) -> list[Document]:
        return self.sparse.docs

    @property
    def num_documents(self) -> int:
        return self.sparse.num_documents

    @property
    def corpus_fingerprint(self) -> str:
        return self.sparse.corpus_fingerprint

    def retrieve(self, query: str, k: int = 5) -> list[Passage]:
        return self.retrieve_many([query], k)[0]

    def retrieve_many(self, queries: Sequence[str], k: int = 5) -> list[list[Passage]]:
        """`retrieve` for each query; the dense side embeds and searches them all at once."""
        check_k(k)
        for q in queries:
            check_query(q)
        depth = max(k, self.pool)
        dense = self.dense.retrieve_many(queries, depth) if queries else []
        return [reciprocal_rank_fusion({"bm25": self.sparse.retrieve(q, depth), "faiss": d}, self.rrf_k)[:k]
                for q, d in zip(queries, dense)]

    def manifest(self) -> Manifest:
        return Manifest(
            kind=self.kind,
            backend=self.sparse.backend,
            index_type=self.dense.index_type,
            embedding_model=self.dense.embedding_model,
            corpus_fingerprint=self.corpus_fingerprint,
            num_documents=self.num_documents,
            options={"rrf_k": self.rrf_k, "pool": self.pool},
        )

    def write_payload(self, path: Path) -> None:
        """Each part in its own sub-directory with its own manifest; the documents are stored once, at the top."""
        for part in (self.sparse, self.dense):
            sub = path / part.kind
            sub.mkdir()
            part.write_payload(sub)
            write_manifest(sub, part.manifest())

    @classmethod
    def from_saved(cls, path: Path, manifest: Manifest, docs: list[Document]) -> "HybridRetriever":
        parts = []
        for part_cls in (BM25Retriever, DenseRetriever):
            sub = path / part_cls.kind
            sub_manifest = read_manifest(sub)
            if sub_manifest.kind != part_cls.kind or sub_manifest.corpus_fingerprint != manifest.corpus_fingerprint:
                raise RetrieverError(f"{sub}: part does not belong to this hybrid index; rebuild it")
            parts.append(part_cls.from_saved(sub, sub_manifest, docs))
        opts = manifest.options
        return cls(*parts, rrf_k=int(opts.get("rrf_k", DEFAULT_RRF_K)), pool=int(opts.get("pool", DEFAULT_POOL)))
