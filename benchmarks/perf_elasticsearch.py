"""Elasticsearch retriever vs. the in-process BM25 on NQ-open-oracle: speed, agreement and recall.

Bulk-indexes the 2,600 passages (docs/s), then runs the same questions through both retrievers one
at a time (queries/s and p50/p95 latency, top-10 overlap, recall of the gold passage at 1/5/10).
Starts a local node (retrievers/elasticsearch/node/launcher.py) unless --es-url names a running cluster.

    .venv/bin/python benchmarks/perf_elasticsearch.py                    # 300 questions
    .venv/bin/python benchmarks/perf_elasticsearch.py --questions 2655   # all of them
    .venv/bin/python benchmarks/perf_elasticsearch.py --sweep            # title boosts and query types

Data: ``$ARAG_DATA_DIR/nq_open_oracle`` or ``../shared/data/nq_open_oracle`` beside the repository.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.datasets import data_dir_or_exit, nq_oracle_gold  # noqa: E402
from corpora.documents import load_documents  # noqa: E402
from retrievers import build_retriever  # noqa: E402
from retrievers.elasticsearch.retriever import ElasticsearchRetriever  # noqa: E402

KS = (1, 5, 10)
SWEEP = [("combined_fields", b) for b in (1.0, 1.5, 2.0, 3.0)] + [(t, b) for t in ("cross_fields", "most_fields", "best_fields") for b in (1.5, 2.0)]


def timed_run(retriever, questions: list[str], k: int = 10) -> tuple[list[list[str]], list[float]]:
    ranked, lat = [], []
    for q in questions:
        t = time.perf_counter()
        ranked.append([p.id for p in retriever.retrieve(q, k)])
        lat.append(time.perf_counter() - t)
    return ranked, lat


def recall(ranked: list[list[str]], gold: list[str]) -> str:
    return " / ".join(f"{sum(g in r[:k] for r, g in zip(ranked, gold)) / len(gold):.3f}" for k in KS)


def overlap(a: list[list[str]], b: list[list[str]]) -> float:
    return sum(len(set(x) & set(y)) / max(len(x), 1) for x, y in zip(a, b)) / len(a)


def speed(lat: list[float]) -> str:
    p95 = statistics.quantiles(lat, n=20)[-1]
    return f"{len(lat) / sum(lat):7.1f} q/s   p50 {1000 * statistics.median(lat):6.2f} ms   p95 {1000 * p95:6.2f} ms"


def run(url: str, args: argparse.Namespace) -> None:
    data = data_dir_or_exit()
    docs = load_documents(data / "nq_open_oracle" / "corpus.jsonl.gz")
    pairs = nq_oracle_gold(data, docs)
    pairs = pairs[:: max(len(pairs) // args.questions, 1)][: args.questions]
    questions, gold = [q for q, _ in pairs], [g for _, g in pairs]

    es = ElasticsearchRetriever(url, args.index)
    es.delete_index()
    t = time.perf_counter()
    es.index_documents(docs, progress=False)
    first = time.perf_counter() - t
    t = time.perf_counter()
    es.index_documents(docs, progress=False)
    again = time.perf_counter() - t
    print(f"Elasticsearch {es.server_version()} at {url}; {len(docs)} passages, {len(questions)} questions")
    print(f"bulk indexing: {len(docs) / first:.0f} docs/s into a new index, {len(docs) / again:.0f} docs/s re-indexing (count {es.count()})")

    t = time.perf_counter()
    bm25 = build_retriever("bm25", docs, progress=False)
    print(f"in-process BM25 (bm25s) built in {time.perf_counter() - t:.1f} s")
    timed_run(es, questions[:20])  # warm-up: JIT, caches
    timed_run(bm25, questions[:20])
    es_ranked, es_lat = timed_run(es, questions)
    bm_ranked, bm_lat = timed_run(bm25, questions)
    print(f"{'':24}{'speed (one query at a time)':58}recall@1/5/10")
    print(f"{'Elasticsearch BM25':24}{speed(es_lat):58}{recall(es_ranked, gold)}")
    print(f"{'in-process BM25':24}{speed(bm_lat):58}{recall(bm_ranked, gold)}")
    print(f"top-10 overlap: {overlap(es_ranked, bm_ranked):.3f}")

    if args.sweep:
        print("\nquery / title boost: top-10 overlap with in-process BM25, recall@1/5/10")
        for kind, boost in SWEEP:
            es.title_boost, es.query_type = boost, kind
            ranked, _ = timed_run(es, questions)
            print(f"  {kind:16} ^{boost:<4g} overlap {overlap(ranked, bm_ranked):.3f}   {recall(ranked, gold)}")
    es.delete_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--es-url", default=None, help="a running cluster (default: start a local node)")
    parser.add_argument("--index", default="perf-nq-open-oracle", help="index to create and delete (default: %(default)s)")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--sweep", action="store_true", help="also compare title boosts and multi-field query types")
    args = parser.parse_args()
    if args.es_url:
        run(args.es_url, args)
        return
    from retrievers.elasticsearch.node.launcher import running_node

    with running_node(node_name="perf") as node:
        run(node.url, args)


if __name__ == "__main__":
    main()
