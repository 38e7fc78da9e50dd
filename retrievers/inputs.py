"""What goes into a retriever (documents, queries, a progress choice) and what comes out (passages).

Every backend indexes the same text for a document (title and body together) so that BM25, FAISS
and their fusion rank the same thing and their recalls can be compared.
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

from corpora.documents import Document
from retrievers.base import Passage, RetrieverError


def indexed_text(doc: Document) -> str:
    """Title and text together: titles carry the entity a question names (NQ's gold passages rely on it)."""
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


def check_documents(docs: Sequence[Document]) -> list[Document]:
    """Reject an empty corpus, non-documents, documents without text and duplicate ids, naming the culprit."""
    docs = list(docs)
    if not docs:
        raise RetrieverError("cannot build an index from an empty corpus")
    seen: set[str] = set()
    for i, d in enumerate(docs):
        if not isinstance(d, Document):
            raise RetrieverError(f"corpus item {i} is a {type(d).__name__}, not a Document")
        if not isinstance(d.text, str) or not d.text.strip():
            raise RetrieverError(f"document {d.id!r} (item {i}) has no text")
        if d.id in seen:
            raise RetrieverError(f"duplicate document id {d.id!r} (item {i})")
        seen.add(d.id)
    return docs


def check_query(query: str) -> str:
    """An empty query has no answer in any backend; say so instead of returning arbitrary passages."""
    if not isinstance(query, str):
        raise RetrieverError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise RetrieverError("query is empty")
    return query


def progress_enabled(progress: bool | None) -> bool:
    """``None`` means "only on a terminal", so logs and CI output stay free of progress-bar noise."""
    if progress is None:
        return sys.stderr.isatty()
    return bool(progress)


def to_passage(doc: Document, score: float, **extra: Any) -> Passage:
    """A document with its score; ``extra`` (e.g. fusion ranks) joins the document's own metadata."""
    meta = {**doc.metadata, **extra} if extra else dict(doc.metadata)
    return Passage(id=doc.id, text=doc.text, title=doc.title, score=float(score), metadata=meta)
