"""Retrievers: one protocol (`Retriever.retrieve(query, k) -> list[Passage]`); BM25, FAISS and RRF hybrid;
indexes saved atomically with a manifest and reloaded without re-embedding."""
from retrievers.base import Passage, Retriever, RetrieverError, check_k
from retrievers.bm25 import BM25Retriever
from retrievers.build import build_index, build_retriever
from retrievers.dense import DenseRetriever
from retrievers.embeddings import DEFAULT_EMBEDDING_MODEL
from retrievers.hybrid import HybridRetriever, reciprocal_rank_fusion
from retrievers.store import Manifest, load_index

__all__ = [
    "BM25Retriever", "DEFAULT_EMBEDDING_MODEL", "DenseRetriever", "HybridRetriever", "Manifest", "Passage",
    "Retriever", "RetrieverError", "build_index", "build_retriever", "check_k", "load_index",
    "reciprocal_rank_fusion",
]
