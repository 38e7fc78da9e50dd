"""Recall of the gold passage at 1/5/10 on NQ-open-oracle (2,655 questions, 2,600 passages).

Every question has exactly one gold passage in the corpus, so recall@k is the share of questions
whose gold passage is among the top k. The reference figures of docs/design.md,
"Lucene BM25 recall on NQ-open-oracle", are printed beside ours.

    .venv/bin/python benchmarks/retrieval_recall.py                 # bm25 (3 stemmer settings), faiss, hybrid
    .venv/bin/python benchmarks/retrieval_recall.py --kinds bm25    # seconds, no embedding
    .venv/bin/python benchmarks/retrieval_recall.py --index-dir /tmp/nqo-faiss   # reuse the embedded index

Data: ``$ARAG_DATA_DIR/nq_open_oracle`` or ``../shared/data/nq_open_oracle`` beside the repository.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from corpora.atomic import write_json_atomic  # noqa: E402
from corpora.documents import fingerprint, load_documents  # noqa: E402
from retrievers import DenseRetriever, Passage, RetrieverError, build_index, build_retriever, load_index, reciprocal_rank_fusion  # noqa: E402
from retrievers.hybrid import DEFAULT_POOL, HybridRetriever  # noqa: E402
from benchmarks.datasets import data_dir_or_exit, nq_oracle_gold  # noqa: E402

KS = (1, 5, 10)
REFERENCE = {  # docs/design.md, "Lucene BM25 recall on NQ-open-oracle", measured on this kind of machine
    "bm25 (snowball english)": (0.783, 0.931, 0.955),  # Lucene; bm25s + Snowball said to match within 0.002
    "faiss flat": (0.895, 0.991, 0.994),
    "hybrid rrf": (0.822, 0.986, 0.998),
}


def recall(ranked_ids: list[list[str]], gold: list[str]) -> tuple[float, ...]:
    return tuple(sum(g in ids[:k] for ids, g in zip(ranked_ids, gold)) / len(gold) for k in KS)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="bm25,faiss,hybrid", help="comma-separated subset of bm25,faiss,hybrid")
    ap.add_argument("--bm25-stemmers", default="english,porter,none", help="PyStemmer algorithms to compare ('none' = no stemming)")
    ap.add_argument("--rank-bm25", action="store_true", help="also score BM25 with the rank-bm25 backend (BM25Okapi)")
    ap.add_argument("--pools", default=str(DEFAULT_POOL), help="hybrid candidate pools to compare, e.g. 10,20,50,1000")
    ap.add_argument("--limit", type=int, default=0, help="first N questions only (0 = all)")
    ap.add_argument("--index-dir", type=Path, help="save/reuse the FAISS index here (skips re-embedding on reruns)")
    ap.add_argument("--out", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    kinds = set(args.kinds.split(","))
    if not kinds <= {"bm25", "faiss", "hybrid"}:
        ap.error(f"--kinds takes bm25, faiss, hybrid; got {args.kinds}")

    data = data_dir_or_exit()
    docs = load_documents(data / "nq_open_oracle" / "corpus.jsonl.gz")
    qa = nq_oracle_gold(data, docs)[: args.limit or None]
    questions, gold = [q for q, _ in qa], [g for _, g in qa]
    print(f"NQ-open-oracle: {len(questions)} questions, {len(docs)} passages", flush=True)
    rows: dict[str, dict] = {}
    pools = [int(x) for x in args.pools.split(",")]
    depth = max(max(KS), *pools)

    stems = args.bm25_stemmers.split(",") if "bm25" in kinds else []
    if "hybrid" in kinds and "english" not in stems:
        stems.append("english")  # the hybrid's BM25 half uses the default analyzer
    for stem in stems:
        t0 = time.perf_counter()
        r = build_retriever("bm25", docs, stemmer=None if stem == "none" else stem, progress=False)
        ranked = [[p.id for p in r.retrieve(q, depth)] for q in questions]
        if "bm25" in kinds:
            rows[f"bm25 ({'snowball english' if stem == 'english' else stem})"] = {
                "recall": recall(ranked, gold), "seconds": time.perf_counter() - t0}
        if stem == "english":
            sparse_default, sparse_ranked = r, ranked

    if "bm25" in kinds and args.rank_bm25:
        t0 = time.perf_counter()
        r = build_retriever("bm25", docs, backend="rank-bm25", progress=False)
        ranked = [[p.id for p in r.retrieve(q, max(KS))] for q in questions]
        rows["bm25 rank-bm25 (snowball english)"] = {"recall": recall(ranked, gold), "seconds": time.perf_counter() - t0}

    if kinds & {"faiss", "hybrid"}:
        t0 = time.perf_counter()
        if args.index_dir and args.index_dir.is_dir():
            try:
                dense = load_index(args.index_dir, expected_fingerprint=fingerprint(docs))
            except RetrieverError as exc:
                sys.exit(str(exc))
            if not isinstance(dense, DenseRetriever):
                sys.exit(f"{args.index_dir}: holds a {dense.kind} index, not a faiss one")
        elif args.index_dir:
            dense = build_index("faiss", docs, args.index_dir)
        else:
            dense = build_retriever("faiss", docs)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        # Batched query embedding; the same search DenseRetriever.retrieve does one query at a time.
        _, idx = dense.search(dense.encoder.encode(questions, progress=sys.stderr.isatty()), depth)
        dense_ranked = [[dense.docs[i].id for i in row if i >= 0] for row in idx]
        if "faiss" in kinds:
            rows[f"faiss {dense.index_type}"] = {"recall": recall(dense_ranked, gold), "seconds": build_s + time.perf_counter() - t0,
                                  "index_seconds": build_s}
        for pool in pools if "hybrid" in kinds else []:
            hybrid = HybridRetriever(sparse_default, dense, pool=pool)
            cut = max(max(KS), pool)  # what HybridRetriever.retrieve(q, 10) asks of each part
            t0 = time.perf_counter()
            fused = [
                [p.id for p in reciprocal_rank_fusion({"bm25": _ids(s[:cut]), "faiss": _ids(d[:cut])})[: max(KS)]]
                for s, d in zip(sparse_ranked, dense_ranked)
            ]
            # the shortcut above must equal HybridRetriever.retrieve; check it on a sample
            for q, ids in list(zip(questions, fused))[:25]:
                assert [p.id for p in hybrid.retrieve(q, max(KS))] == ids, q
            name = "hybrid rrf" if pool == DEFAULT_POOL else f"hybrid rrf (pool {pool})"
            rows[name] = {"recall": recall(fused, gold), "seconds": time.perf_counter() - t0}

    print("\n| retriever | R@1 | R@5 | R@10 | docs/design.md R@1/5/10 | seconds |\n|---|---|---|---|---|---|")
    for name, row in rows.items():
        ref = "/".join(f"{x:.3f}" for x in REFERENCE[name]) if name in REFERENCE else "—"
        r1, r5, r10 = row["recall"]
        print(f"| {name} | {r1:.3f} | {r5:.3f} | {r10:.3f} | {ref} | {row['seconds']:.1f} |")
    if args.out:
        write_json_atomic(args.out, {"questions": len(questions), "passages": len(docs), "rows": rows})


def _ids(ids: list[str]) -> list[Passage]:
    """Precomputed rankings as the id-only passages reciprocal_rank_fusion reads."""
    return [Passage(id=i, text="") for i in ids]


if __name__ == "__main__":
    main()
