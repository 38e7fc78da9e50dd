"""Which relevance score separates relevant from irrelevant passages, across queries?

The relevance gate (retrievers/relevance.py) drops passages below one fixed threshold, so its score
must mean the same for every query. Three candidates, each scored on (question, passage) pairs
pooled over all questions (pooled ROC-AUC: one threshold for all; per-question AUC beside it:
the ranking within one question's passages, which the retriever already does):

- ``bm25``: the raw BM25 score (Lucene variant, the project's default retriever) — the baseline;
- ``bm25-normalised``: BM25 divided by the query's best possible score, the sum of its terms' idf
  (each term's saturation limit as tf → ∞), so 1.0 = every query term, as often as can be;
- ``embedding``: cosine of the all-MiniLM-L6-v2 embeddings of question and passage (title + text).

Sets (each from ``../shared/data``):
- NQ-open-oracle: BM25 top-5 over its own corpus; relevant = the gold passage; and = holds an answer.
- HotpotQA distractor: each question's 10 paragraphs; relevant = the 2 supporting ones.
- NQ-open (dev) over the union corpus, which lacks many answers: BM25 top-3; relevant = holds an answer.

    .venv/bin/python -m benchmarks.relevance_separation --limit 300
"""
from __future__ import annotations

import argparse
import math
import random
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.datasets import corpus_paths, data_dir_or_exit, load_dataset
from corpora.documents import Document, load_documents
from corpora.text import normalize_answer
from retrievers.base import Passage
from retrievers.bm25 import BM25Retriever
from retrievers.inputs import to_passage
from retrievers.relevance import EmbeddingRelevance, passage_text


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties counted half; nan with one class."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


class NormalisedBM25:
    """BM25 / Σ idf(t) over the query's terms: the query's own best possible score."""

    def __init__(self, bm25: BM25Retriever) -> None:
        self.bm25 = bm25
        self._idf: dict[str, float] = {}
        self.n = bm25.num_documents

    def idf(self, term: str) -> float:
        if term not in self._idf:
            df = int((self.bm25.scorer.scores([term]) > 0).sum())
            self._idf[term] = math.log(1 + (self.n - df + 0.5) / (df + 0.5)) if df else 0.0
        return self._idf[term]

    def scores(self, query: str, passages: Sequence[Passage]) -> list[float]:
        best = sum(self.idf(t) for t in self.bm25.analyzer(query))
        raw = self.raw(query, passages)
        return [r / best if best > 0 else 0.0 for r in raw]

    def raw(self, query: str, passages: Sequence[Passage]) -> list[float]:
        all_scores = self.bm25.scores(query)
        return [float(all_scores[self.index[p.id]]) for p in passages]

    @property
    def index(self) -> dict[str, int]:
        if not hasattr(self, "_index"):
            self._index = {d.id: i for i, d in enumerate(self.bm25.docs)}
        return self._index


def holds_answer(p: Passage, answers: Sequence[str]) -> bool:
    text = f" {normalize_answer(passage_text(p))} "
    return any(f" {a} " in text for a in (normalize_answer(x) for x in answers) if a)


def pairs_nq_oracle(data: Path, limit: int, k: int) -> tuple[list, BM25Retriever]:
    docs = load_documents(corpus_paths("nq_open_oracle", data))
    bm25 = BM25Retriever.build(docs, progress=False)
    by_content = {(d.title, d.text): d.id for d in docs}
    out = []
    for ex in load_dataset("nq_open_oracle", data, limit=limit):
        gold = by_content[(ex.metadata["gold_title"], ex.metadata["gold_text"])]
        for p in bm25.retrieve(ex.question, k):
            out.append((ex.question, p, {"gold": p.id == gold, "answer": holds_answer(p, ex.answers)}))
    return out, bm25


def pairs_hotpot(data: Path, limit: int) -> tuple[list, BM25Retriever]:
    """Each question's own 10 paragraphs (the distractor setting); BM25 statistics from the set's corpus."""
    import gzip
    import json

    docs = load_documents(corpus_paths("hotpotqa_dev_distractor_500", data))
    bm25 = BM25Retriever.build(docs, progress=False)
    by_content = {(d.title, d.text): d for d in docs}
    with gzip.open(data / "hotpotqa_dev_distractor_500" / "dev_subsampled.jsonl.gz", "rt", encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh]
    random.Random(0).shuffle(recs)
    out = []
    for r in recs[:limit]:
        for c in r["contexts"]:
            d = by_content.get((c["title"], c["paragraph_text"]))
            if d is None:
                continue
            out.append((r["question_text"], to_passage(d, 0.0), {"gold": bool(c.get("is_supporting"))}))
    return out, bm25


def pairs_nq_union(data: Path, limit: int, k: int) -> tuple[list, BM25Retriever]:
    docs: list[Document] = load_documents(corpus_paths("nq_open", data, "union"))
    bm25 = BM25Retriever.build(docs, progress=False)
    out = []
    for ex in load_dataset("nq_open", data, limit=limit):
        for p in bm25.retrieve(ex.question, k):
            out.append((ex.question, p, {"answer": holds_answer(p, ex.answers)}))
    return out, bm25


def per_question_auc(pairs: list, scores: list[float], label: str) -> float:
    groups: dict[str, tuple[list, list]] = {}
    for (q, _, labels), s in zip(pairs, scores):
        groups.setdefault(q, ([], []))
        groups[q][0].append(s)
        groups[q][1].append(labels[label])
    vals = [auc(s, y) for s, y in groups.values()]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=300, help="questions per set (default: 300)")
    args = ap.parse_args(argv)
    data = data_dir_or_exit()
    emb = EmbeddingRelevance()
    sets = [("nq_open_oracle (BM25 top-5)", lambda: pairs_nq_oracle(data, args.limit, 5), ("gold", "answer")),
            ("hotpotqa_dev_distractor_500 (10 paragraphs)", lambda: pairs_hotpot(data, args.limit), ("gold",)),
            ("nq_open over the union corpus (BM25 top-3)", lambda: pairs_nq_union(data, args.limit, 3), ("answer",))]
    print("| set | relevant = | pairs (relevant) | score | pooled AUC | per-question AUC |")
    print("|---|---|---|---|---|---|")
    for title, make, labels in sets:
        pairs, bm25 = make()
        norm = NormalisedBM25(bm25)
        by_q: dict[str, list[int]] = {}
        for i, (q, _, _) in enumerate(pairs):
            by_q.setdefault(q, []).append(i)
        scores: dict[str, list[float]] = {"bm25": [0.0] * len(pairs), "bm25-normalised": [0.0] * len(pairs),
                                          "embedding": [0.0] * len(pairs)}
        for q, idx in by_q.items():
            ps = [pairs[i][1] for i in idx]
            for name, vals in (("bm25", norm.raw(q, ps)), ("bm25-normalised", norm.scores(q, ps)),
                               ("embedding", emb.scores(q, ps))):
                for i, v in zip(idx, vals):
                    scores[name][i] = v
        for label in labels:
            y = [lab[label] for _, _, lab in pairs]
            for name, s in scores.items():
                print(f"| {title} | {'gold passage' if label == 'gold' else 'holds an answer'} | {len(pairs)} ({sum(y)}) "
                      f"| {name} | {auc(s, y):.3f} | {per_question_auc(pairs, s, label):.3f} |", flush=True)


if __name__ == "__main__":
    main()
