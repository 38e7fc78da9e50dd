"""Word-window chunking with overlap (DPR used 100-word passages; overlap keeps answers that straddle a cut)."""
from __future__ import annotations

from typing import Iterable

from corpora.documents import Document
from corpora.errors import CorpusError


def chunk_words(docs: Iterable[Document], size: int = 100, overlap: int = 20) -> list[Document]:
    """Split each document into windows of ``size`` words, consecutive windows sharing ``overlap`` words.

    A document no longer than ``size`` stays whole and keeps its id; chunks get ``{id}#{n}``.
    """
    if size <= 0 or overlap < 0 or overlap >= size:
        raise CorpusError(f"chunking needs size > overlap >= 0, got size={size}, overlap={overlap}")
    out: list[Document] = []
    step = size - overlap
    for d in docs:
        words = d.text.split()
        if len(words) <= size:
            out.append(d)
            continue
        for n, start in enumerate(range(0, len(words) - overlap, step)):
            piece = " ".join(words[start : start + size])
            out.append(Document(id=f"{d.id}#{n}", text=piece, title=d.title, metadata={**d.metadata, "parent_id": d.id}))
    return out
