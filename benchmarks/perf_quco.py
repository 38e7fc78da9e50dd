"""QuCo check latency and corpus-index build throughput, one run.

Builds an infini-gram index of the pretraining-corpus sample (the shared Wikipedia stand-in plus
the QA corpora), repeated (shuffled) until it holds at least ``--min-tokens`` tokens, then times, per NQ-open
question with its gold answer as the drafted step: the pre-generation check (question entities'
frequency) plus the runtime check (question/answer co-occurrence). spaCy entity extraction is
timed separately. Phrase caches are cleared before every question (cold look-ups); wall-clock and
process CPU time (the engine's threads included) are both reported, since on a shared machine the
wall clock mostly measures waiting for a core.

    python -m benchmarks.perf_quco [--data-dir ../shared/data] [--questions 300] [--min-tokens 10000000]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.datasets import UNION_CORPORA, DatasetError, data_dir_or_exit, load_dataset

# The pretraining-corpus sample, a proxy for the LM's (undisclosed) pretraining data, is every shared
# corpus (UNION_CORPORA). Their order does not matter: each copy is shuffled, and counts ignore order.
SAMPLE_TOKENS = 2_650_000  # one pass over UNION_CORPORA in SmolLM2 tokens (measured)


def _repeated_sample(data: Path, repeat: int) -> list:
    """The sample ``repeat`` times, each copy in another document order: a corpus followed by an
    identical copy makes infini-gram's suffix-array merge compare suffixes across the whole copy
    (quadratic); shuffled copies diverge after one document. Counts are the same either way."""
    import random

    from corpora.documents import iter_documents

    docs = list(iter_documents([data / f for f in UNION_CORPORA]))
    out = []
    for k in range(repeat):
        copy = docs[:]
        random.Random(k).shuffle(copy)
        out.extend(copy)
    return out


def _default_tokenizer():
    from rag.models.hf_model import HFLanguageModel

    return HFLanguageModel.load(None).tokenizer


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _questions(data: Path, n: int) -> list[tuple[str, str]]:
    """The first ``n`` NQ-open-oracle questions (file order) with their first gold answer."""
    try:
        examples = load_dataset("nq_open_oracle", data, limit=n, shuffle_seed=None)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}") from None
    return [(ex.question, ex.answers[0]) for ex in examples]


def _time_checks(quco, pairs, ents) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU milliseconds (engine threads included) per question, with the
    phrase caches cleared first: every question pays for its own look-ups."""
    from triggers.base import StepState
    from triggers.quco import ENTITIES_MEMO
    from rag.models.lm import Generation

    stats = quco.statistics
    wall, cpu = [], []
    for (q, a), (qe, ae) in zip(pairs, ents):
        stats.clear_caches()
        state = StepState(question=q, draft=Generation(text=a))
        state.memo((ENTITIES_MEMO, q), lambda: qe)  # entities are pre-extracted: spaCy is timed apart
        state.memo((ENTITIES_MEMO, a), lambda: ae)
        t, c = time.perf_counter(), time.process_time()
        quco.check_question(state)
        quco.score(state)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--min-tokens", type=int, default=10_000_000)
    ap.add_argument("--index", default=None, help="index folder to write (default: a temporary folder, removed after)")
    ap.add_argument("--reuse", action="store_true", help="time an existing --index instead of building it (build figures from its manifest)")
    args = ap.parse_args(argv)

    from corpora.entities import extract_entities, load_nlp
    from corpora.infinigram_index import BuildReport, build_index, read_manifest
    from corpora.statistics import CorpusStatistics
    from triggers.quco import QuCo

    data = data_dir_or_exit(args.data_dir)
    repeat = -(-args.min_tokens // SAMPLE_TOKENS)
    tok = _default_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.index) if args.index else Path(tmp) / "index"
        m = read_manifest(out) if args.reuse and out.is_dir() else None
        if m is not None:
            report = BuildReport(out, m["documents"], m["tokens"], m["text_bytes"],
                                 m.get("tokenize_seconds", math.nan), m.get("index_seconds", math.nan))
        else:
            report = build_index(_repeated_sample(data, repeat), out, tok, progress=sys.stderr.isatty(),
                                 description=f"pretraining-corpus sample x{repeat}")
        size_mb = sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e6
        stats = CorpusStatistics.open(out)
        quco = QuCo(stats)
        pairs = _questions(data, args.questions)

        t = time.perf_counter()
        load_nlp()
        nlp_load = time.perf_counter() - t
        spacy_ms, ents = [], []
        for q, a in pairs:
            t = time.perf_counter()
            ents.append((extract_entities(q), extract_entities(a)))
            spacy_ms.append((time.perf_counter() - t) * 1000)
        wall, cpu = _time_checks(quco, pairs, ents)

    with_entities = sum(1 for qe, _ in ents if qe)
    rows = {
        "index": {"documents": report.documents, "tokens": report.tokens, "text_MB": round(report.text_bytes / 1e6, 1),
                  "repeats": repeat, "size_on_disk_MB": round(size_mb, 1),
                  "tokenize_s": round(report.tokenize_seconds, 1), "suffix_array_s": round(report.index_seconds, 1),
                  "build_MB_per_s": round(report.mb_per_second, 2)},
        "questions": len(pairs), "questions_with_entities": with_entities,
        **{f"quco_check_ms_{name}": {"median": round(statistics.median(xs), 3), "p95": round(_pct(xs, 0.95), 3)}
           for name, xs in (("wall", wall), ("cpu", cpu))},
        "load_average_1min": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
        "spacy_ms_per_question": {"median": round(statistics.median(spacy_ms), 2), "p95": round(_pct(spacy_ms, 0.95), 2),
                                  "model_load_s": round(nlp_load, 2)},
    }
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
