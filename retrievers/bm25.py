"""BM25 over title + text, scored by bm25s (default) or rank-bm25, with one analyzer for both.

bm25s with ``method="lucene"`` scores document d for query q as Lucene >= 8's BM25Similarity:

    score(q, d) = sum over query tokens t of  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

(|d| counts the tokens left after stopword removal; Lucene dropped the constant (k1 + 1) factor,
which does not change the ranking). bm25s precomputes every (term, document) score into a sparse
matrix, so a query is a sum of a few sparse columns: tens of times faster than rank-bm25, which
loops over all documents in Python for every query term.

k1 = 1.2, b = 0.75 are the Lucene/Elasticsearch defaults; English stopwords and the Snowball
English stemmer (PyStemmer) reproduce Lucene's recall on NQ (docs/design.md,
"Lucene BM25 recall on NQ-open-oracle").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol, Sequence

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN
from rank_bm25 import BM25Okapi
from tqdm.auto import tqdm

from corpora.documents import Document, fingerprint
from retrievers.base import Passage, RetrieverError, check_k
from retrievers.inputs import check_documents, check_query, indexed_text, progress_enabled, to_passage
from retrievers.store import IndexDirectory, Manifest, damaged

BACKENDS = ("bm25s", "rank-bm25")
DEFAULT_K1 = 1.2
DEFAULT_B = 0.75
STOPWORD_LISTS = {"english": STOPWORDS_EN}
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's / bm25s's token pattern


@dataclass(frozen=True)
class Analyzer:
    """Lower-case, split on words of 2+ characters, drop stopwords, stem: bm25s.tokenize's pipeline.

    Corpus and queries must go through the same analyzer; the index stores its settings.
    """

    stopwords: str | None = "english"
    stemmer: str | None = "english"

    def __post_init__(self) -> None:
        if self.stopwords is not None and self.stopwords not in STOPWORD_LISTS:
            raise RetrieverError(f"unknown stopword list {self.stopwords!r} (use one of {', '.join(STOPWORD_LISTS)} or none)")
        if self.stemmer is not None and self.stemmer not in Stemmer.algorithms():
            raise RetrieverError(f"unknown stemmer {self.stemmer!r} (PyStemmer knows {', '.join(Stemmer.algorithms())})")

    @cached_property
    def _stop(self) -> frozenset[str]:
        return frozenset(STOPWORD_LISTS[self.stopwords]) if self.stopwords else frozenset()

    @cached_property
    def _stem(self):
        return Stemmer.Stemmer(self.stemmer).stemWords if self.stemmer else None

    def __call__(self, text: str) -> list[str]:
        tokens = [t for t in _TOKEN.findall(text.lower()) if t not in self._stop]
        return self._stem(tokens) if self._stem and tokens else tokens


class _Scorer(Protocol):
    name: str

    def scores(self, tokens: list[str]) -> np.ndarray: ...

    def write(self, path: Path) -> None: ...


class _BM25SScorer:
    """bm25s, Lucene variant: precomputed sparse (document x term) scores."""

    name = "bm25s"

    def __init__(self, model: bm25s.BM25):
        self.model = model
        self.num_docs = int(model.scores["num_docs"])

    @classmethod
    def build(cls, corpus_tokens: list[list[str]], k1: float, b: float, progress: bool) -> "_BM25SScorer":
        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        model.index(corpus_tokens, show_progress=progress)
        return cls(model)

    def scores(self, tokens: list[str]) -> np.ndarray:
        ids = self.model.get_tokens_ids(tokens)
        if not ids:
            return np.zeros(self.num_docs, dtype=np.float32)
        return self.model.get_scores_from_ids(ids)

    def write(self, path: Path) -> None:
        self.model.save(str(path), show_progress=False)

    @classmethod
    def read(cls, path: Path, k1: float, b: float) -> "_BM25SScorer":
        """bm25s saved k1 and b with its scores; they are taken only for the scorers' shared
        ``read(path, k1, b)`` (rank-bm25 rebuilds its model from them)."""
        return cls(bm25s.BM25.load(str(path), show_progress=False))


class _RankBM25Scorer:
    """rank-bm25's BM25Okapi: idf = ln((N - df + 0.5) / (df + 0.5)), floored at 0.25 x mean idf where negative,
    and tf scaled by (k1 + 1). Its scores therefore differ from bm25s/Lucene (the ranking mostly agrees).
    It keeps no index file format, so the tokenized corpus is saved and BM25Okapi rebuilt on load (seconds).
    """

    name = "rank-bm25"
    TOKENS_NAME = "tokens.jsonl"

    def __init__(self, corpus_tokens: list[list[str]], k1: float, b: float):
        self.corpus_tokens = corpus_tokens
        self.model = BM25Okapi(corpus_tokens, k1=k1, b=b)

    @classmethod
    def build(cls, corpus_tokens: list[list[str]], k1: float, b: float, progress: bool) -> "_RankBM25Scorer":
        return cls(corpus_tokens, k1, b)

    def scores(self, tokens: list[str]) -> np.ndarray:
        return np.asarray(self.model.get_scores(tokens), dtype=np.float64)

    def write(self, path: Path) -> None:
        with (path / self.TOKENS_NAME).open("w", encoding="utf-8") as fh:
            for toks in self.corpus_tokens:
                fh.write(json.dumps(toks, ensure_ascii=False) + "\n")

    @classmethod
    def read(cls, path: Path, k1: float, b: float) -> "_RankBM25Scorer":
        with (path / cls.TOKENS_NAME).open(encoding="utf-8") as fh:
            return cls([json.loads(line) for line in fh], k1, b)


_SCORERS = {"bm25s": _BM25SScorer, "rank-bm25": _RankBM25Scorer}


def normalise_backend(backend: str) -> str:
    name = str(backend).replace("_", "-").lower()
    if name not in _SCORERS:
        raise RetrieverError(f"unknown BM25 backend {backend!r} (use one of {', '.join(BACKENDS)})")
    return name


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first, equal scores in document order.

    The order is total, so ``retrieve(q, 3)`` is always a prefix of ``retrieve(q, 10)`` even when
    scores tie at the cut-off (e.g. the zero scores of passages sharing no term with the query).
    Partitioning keeps it O(N).
    """
    n = len(scores)
    if k >= n:
        idx = np.arange(n)
    else:
        kth = np.partition(scores, n - k)[n - k]  # the k-th largest score
        above = np.flatnonzero(scores > kth)
        idx = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    return idx[np.lexsort((idx, -scores[idx]))]


class BM25Retriever(IndexDirectory):
    """Sparse lexical retrieval. Scores are BM25 values: 0 means no query term occurs in the passage."""

    kind = "bm25"

    def __init__(self, docs: list[Document], scorer: _Scorer, analyzer: Analyzer, *, k1: float, b: float, corpus_fingerprint: str):
        self.docs = docs
        self.scorer = scorer
        self.analyzer = analyzer
        self.k1 = k1
        self.b = b
        self.corpus_fingerprint = corpus_fingerprint

    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        *,
        backend: str = "bm25s",
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        stopwords: str | None = "english",
        stemmer: str | None = "english",
        progress: bool | None = None,
    ) -> "BM25Retriever":
        docs = check_documents(docs)
        backend = normalise_backend(backend)
        if not (k1 >= 0 and 0 <= b <= 1):
            raise RetrieverError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        analyzer = Analyzer(stopwords=stopwords, stemmer=stemmer)
        show = progress_enabled(progress)
        tokens = [analyzer(indexed_text(d)) for d in tqdm(docs, desc="tokenize", unit="doc", disable=not show)]
        if not any(tokens):
            raise RetrieverError("corpus has no indexable words (every document is empty after stopword removal)")
        scorer = _SCORERS[backend].build(tokens, k1, b, show)
        return cls(docs, scorer, analyzer, k1=k1, b=b, corpus_fingerprint=fingerprint(docs))

    @property
    def num_documents(self) -> int:
        return len(self.docs)

    @property
    def backend(self) -> str:
        return self.scorer.name

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (index order)."""
        return self.scorer.scores(self.analyzer(check_query(query)))

    def retrieve(self, query: str, k: int = 5) -> list[Passage]:
        """The k best passages (all of them when k exceeds the corpus), best first."""
        check_k(k)
        scores = self.scores(query)
        return [to_passage(self.docs[i], scores[i]) for i in top_k(scores, k)]

    def manifest(self) -> Manifest:
        return Manifest(
            kind=self.kind,
            backend=self.backend,
            corpus_fingerprint=self.corpus_fingerprint,
            num_documents=self.num_documents,
            options={"k1": self.k1, "b": self.b, "stopwords": self.analyzer.stopwords, "stemmer": self.analyzer.stemmer},
        )

    def write_payload(self, path: Path) -> None:
        self.scorer.write(path)

    @classmethod
    def from_saved(cls, path: Path, manifest: Manifest, docs: list[Document]) -> "BM25Retriever":
        backend = normalise_backend(manifest.backend or "bm25s")
        opts = manifest.options
        k1, b = float(opts.get("k1", DEFAULT_K1)), float(opts.get("b", DEFAULT_B))
        analyzer = Analyzer(stopwords=opts.get("stopwords"), stemmer=opts.get("stemmer"))
        try:
            scorer = _SCORERS[backend].read(path, k1, b)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise damaged(path, exc) from None
        if getattr(scorer, "num_docs", len(docs)) != len(docs):
            raise RetrieverError(f"{path}: BM25 index holds {scorer.num_docs} documents, manifest says {len(docs)}")
        return cls(docs, scorer, analyzer, k1=k1, b=b, corpus_fingerprint=manifest.corpus_fingerprint)
