"""Retrieval speed on synthetic data, one run, ratios printed (not a timed test).

- BM25 queries per second through `BM25Retriever.retrieve(q, 10)`, bm25s vs rank-bm25, on N
  synthetic passages (Zipf-distributed words, 60-120 per passage). Target: bm25s >= 25x.
- FAISS flat inner-product search, one query at a time, over N x 384 unit vectors. Target: < 20 ms.
  Also end to end (`DenseRetriever.retrieve`: MiniLM query embedding + search).

rank-bm25 scans every document in Python per query term, so it is timed on few queries.

    .venv/bin/python benchmarks/perf_retrieval.py                       # 100k passages, ~2 min on 2 cores
    .venv/bin/python benchmarks/perf_retrieval.py --passages 20000 --rank-queries 10
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

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from corpora.documents import Document  # noqa: E402
from retrievers import DenseRetriever, build_retriever  # noqa: E402
from retrievers.embeddings import load_encoder  # noqa: E402

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def synthetic_corpus(n: int, vocab: int, seed: int) -> tuple[list[Document], list[str]]:
    """Passages of Zipf(1.1)-distributed pseudo-words; queries are 5 words drawn from random passages."""
    rng = np.random.default_rng(seed)
    words = ["".join(LETTERS[rng.integers(0, 26, size=rng.integers(3, 10))]) for _ in range(vocab)]
    probs = 1.0 / np.arange(1, vocab + 1) ** 1.1
    probs /= probs.sum()
    lengths = rng.integers(60, 121, size=n)
    draws = rng.choice(vocab, size=int(lengths.sum()), p=probs)
    docs, start = [], 0
    for i, length in enumerate(lengths):
        docs.append(Document(id=f"s{i}", text=" ".join(words[w] for w in draws[start : start + length])))
        start += length
    queries = [" ".join(rng.choice(docs[int(rng.integers(n))].text.split(), size=5)) for _ in range(1000)]
    return docs, queries


def qps(retriever, queries: list[str], k: int) -> tuple[float, float]:
    """Queries per second by wall clock and by process CPU time (the machine may be shared)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for q in queries:
        retriever.retrieve(q, k)
    return len(queries) / (time.perf_counter() - t0), len(queries) / (time.process_time() - c0)


def latency_ms(fn, reps: int) -> tuple[float, float, float]:
    """Median and p95 wall-clock ms, and median CPU ms (what the call costs when the cores are not shared)."""
    wall, cpu = [], []
    for i in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(i)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    wall.sort()
    return statistics.median(wall), wall[int(0.95 * (len(wall) - 1))], statistics.median(cpu)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--vocab", type=int, default=50_000)
    ap.add_argument("--bm25s-queries", type=int, default=1000)
    ap.add_argument("--rank-queries", type=int, default=20, help="rank-bm25 is slow: time it on this many queries")
    ap.add_argument("--faiss-queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"cores: {os.cpu_count()}, faiss threads: {faiss.omp_get_max_threads()}", flush=True)

    t0 = time.perf_counter()
    docs, queries = synthetic_corpus(args.passages, args.vocab, args.seed)
    print(f"synthetic corpus: {len(docs)} passages, vocab {args.vocab} ({time.perf_counter() - t0:.1f} s)", flush=True)

    # Stemming pseudo-words changes nothing but costs time; both backends share the analyzer anyway.
    t0 = time.perf_counter()
    fast = build_retriever("bm25", docs, backend="bm25s", stemmer=None, progress=False)
    build_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = build_retriever("bm25", docs, backend="rank-bm25", stemmer=None, progress=False)
    build_slow = time.perf_counter() - t0
    q_fast, c_fast = qps(fast, queries[: args.bm25s_queries], 10)
    q_slow, c_slow = qps(slow, queries[: args.rank_queries], 10)
    same_top = sum(fast.retrieve(q, 1)[0].id == slow.retrieve(q, 1)[0].id for q in queries[: args.rank_queries])
    del slow
    print(f"\nBM25 over {len(docs)} passages, k=10, one query per call (queries/s by wall clock; by CPU time)")
    print(f"  bm25s     : build {build_fast:6.1f} s, {q_fast:8.1f} q/s; {c_fast:8.1f} q/s CPU ({args.bm25s_queries} queries)")
    print(f"  rank-bm25 : build {build_slow:6.1f} s, {q_slow:8.1f} q/s; {c_slow:8.1f} q/s CPU ({args.rank_queries} queries)")
    ratio = q_fast / q_slow
    print(f"  speed-up bm25s / rank-bm25: {ratio:.1f}x wall, {c_fast / c_slow:.1f}x CPU (target >= 25x: {'met' if ratio >= 25 else 'MISSED'})")
    print(f"  same top-1 document: {same_top}/{args.rank_queries} (idf formulas differ, see retrievers/bm25.py)")

    rng = np.random.default_rng(args.seed)
    vectors = rng.standard_normal((len(docs), 384), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    encoder = load_encoder()
    dense = DenseRetriever.from_embeddings(docs, vectors, encoder, index_type="flat")
    probes = rng.standard_normal((args.faiss_queries, 384), dtype=np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    dense.search(probes[:1], 10)  # warm-up
    med, p95, cpu = latency_ms(lambda i: dense.search(probes[i : i + 1], 10), args.faiss_queries)
    e2e_med, e2e_p95, e2e_cpu = latency_ms(lambda i: dense.retrieve(queries[i], 10), min(args.faiss_queries, 100))
    print(f"\nFAISS IndexFlatIP over {len(docs)} x 384, k=10, one query per call")
    print(f"  search only   : median {med:.2f} ms, p95 {p95:.2f} ms, CPU {cpu:.2f} ms (target < 20 ms: {'met' if med < 20 else 'MISSED'})")
    print(f"  embed + search: median {e2e_med:.2f} ms, p95 {e2e_p95:.2f} ms, CPU {e2e_cpu:.2f} ms (MiniLM query embedding on CPU)")


if __name__ == "__main__":
    main()
