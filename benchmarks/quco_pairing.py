"""How well each QuCo step-check pairing predicts closed-book errors, from cached drafts.

``score`` re-scores closed-book drafts with the QuCo step check under each pairing
(``triggers.quco.PAIRINGS``) and one or more corpus indexes, without running the model, and
prints per run and index the ROC-AUC of the score against closed-book errors (error = the metric
is 0; 0.5 is chance) and how often the check fires at its threshold on wrong and on right drafts.
It reads any `arag bench` run folder (max-steps 1), or one written by ``drafts``: the same
records (id, question, answers, closed_book.text) for the same questions, but only the
closed-book draft is generated (`arag bench` also retrieves and regenerates, ~3× the model time).
The default pairing was chosen from this table (docs/triggers/quco.md):

    python -m benchmarks.quco_pairing drafts --dataset nq_open_oracle --limit 150 --out runs/drafts-nq_open_oracle
    python -m benchmarks.quco_pairing drafts --dataset triviaqa_sample_200 --limit 150 --out runs/drafts-triviaqa_sample_200
    python -m benchmarks.quco_pairing score runs/drafts-nq_open_oracle runs/drafts-triviaqa_sample_200 \\
        --corpus-index demo --corpus-index ~/.cache/adaptive-rag/corpus-index/wiki
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.datasets import DatasetError, QAExample, data_dir_or_exit, load_dataset
from benchmarks.metrics import METRICS, roc_auc
from benchmarks.run_loop import run_questions
from benchmarks.runner import BenchError, read_results, writer_lock
from corpora.statistics import CorpusStatistics
from rag.models.lm import Generation
from triggers.base import StepState
from triggers.quco import DEFAULT_THRESHOLD, DEFAULT_WINDOW, PAIRINGS, QuCo


def open_index(spec: str) -> CorpusStatistics:
    """``demo`` (the demo index, as `--trigger quco` uses without `--corpus-index`) or a folder."""
    if spec == "demo":
        from corpora.infinigram_index import demo_index_dir
        from rag.models.hf_model import load_default_tokenizer

        return CorpusStatistics.open(demo_index_dir(load_default_tokenizer()))
    return CorpusStatistics.open(Path(spec).expanduser())


def bootstrap_ci(scores: Sequence[float], errors: Sequence[bool], reps: int = 1000,
                 seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile-bootstrap interval of the ROC-AUC (resampling questions): with a handful of
    right answers the AUC is noisy, and the table should say how noisy."""
    rng = np.random.default_rng(seed)
    s, e = np.asarray(scores, dtype=float), np.asarray(errors, dtype=bool)
    aucs = [a for idx in rng.integers(0, len(s), size=(reps, len(s))) if (a := roc_auc(s[idx], e[idx])) is not None]
    return (float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))) if aucs else None


def score_run(records: Sequence[dict[str, Any]], stats: CorpusStatistics, metric: str = "contains",
              threshold: float = DEFAULT_THRESHOLD, window: int = DEFAULT_WINDOW) -> dict[str, dict[str, Any]]:
    """Per pairing: ROC-AUC against closed-book errors, its bootstrap interval, the fire rates on
    wrong / right drafts, and the ROC-AUC over drafts that make a claim (an answer entity beyond the
    question's): a draft without one is scored "seen everywhere" whatever the pairing."""
    triggers = {p: QuCo(stats, threshold=threshold, window=window, pairing=p) for p in PAIRINGS}
    errors: list[bool] = []
    claims: list[bool] = []
    scores: dict[str, list[float]] = {p: [] for p in PAIRINGS}
    fired: dict[str, list[bool]] = {p: [] for p in PAIRINGS}
    for r in records:
        text = r["closed_book"]["text"]
        errors.append(METRICS[metric](text, r["answers"]) == 0)
        state = StepState(question=r["question"], draft=Generation(text=text))  # entities shared via its memo
        for p, trig in triggers.items():
            sig = trig.score(state)
            scores[p].append(sig.score)
            fired[p].append(sig.fired)
        claims.append(sig.details["min_count"] is not None)  # the same under every pairing
    wrong = sum(errors)
    right = len(errors) - wrong
    out = {}
    for p in PAIRINGS:
        on_wrong = sum(f for f, e in zip(fired[p], errors) if e)
        on_right = sum(f for f, e in zip(fired[p], errors) if not e)
        out[p] = {"n": len(errors), "errors": wrong, "roc_auc": roc_auc(scores[p], errors),
                  "ci95": bootstrap_ci(scores[p], errors),
                  "fires_on_wrong": on_wrong / wrong if wrong else None,
                  "fires_on_right": on_right / right if right else None,
                  "no_claim": len(claims) - sum(claims),
                  "no_claim_errors": sum(e for e, c in zip(errors, claims) if not c),
                  "roc_auc_claims": roc_auc([s for s, c in zip(scores[p], claims) if c],
                                            [e for e, c in zip(errors, claims) if c])}
    return out


def _f(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:.0%}" if pct else f"{x:.3f}"


def write_drafts(dataset: str, data_dir: Path, limit: int | None, out_dir: Path, progress: bool = False,
                 lm: Any = None) -> int:
    """Closed-book drafts of the first ``limit`` (seeded-shuffled) questions, as `arag bench` orders
    them, appended to ``out_dir/results.jsonl`` (resumable: questions already there are skipped).
    Returns how many were written; ``lm`` defaults to the default model."""
    from rag.loop import AdaptiveRAG, LoopConfig
    from rag.pipeline import load_language_model
    from triggers import Never

    examples = load_dataset(dataset, data_dir, limit=limit)
    out_dir.mkdir(parents=True, exist_ok=True)
    with writer_lock(out_dir):
        done = {r["id"] for r in read_results(out_dir, repair=True)}
        if all(e.id in done for e in examples):
            return 0
        loop = AdaptiveRAG(lm or load_language_model(None), None, Never(), config=LoopConfig(max_steps=1))

        def run(ex: QAExample) -> dict[str, Any]:
            q = ex.question.strip()
            return {"id": ex.id, "question": q, "answers": list(ex.answers),
                    "closed_book": {"text": loop.answer(q).text.strip()}}

        return run_questions(run, examples, out_dir, done, progress=progress)


def _ci(ci: tuple[float, float] | None) -> str:
    return "–" if ci is None else f"{ci[0]:.2f}–{ci[1]:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.quco_pairing", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("drafts", help="write closed-book drafts of a shared set")
    d.add_argument("--dataset", required=True)
    d.add_argument("--limit", type=int, default=None, help="first N questions of the seeded shuffle (as arag bench)")
    d.add_argument("--data-dir", default=None, help="the shared data folder (default: $ARAG_DATA_DIR, else ../shared/data)")
    d.add_argument("--out", type=Path, required=True, help="run folder to write (resumes)")
    sc = sub.add_parser("score", help="ROC-AUC of each pairing on run folders")
    sc.add_argument("runs", nargs="+", type=Path, help="`arag bench` (max-steps 1) or `drafts` run folders")
    sc.add_argument("--corpus-index", action="append", default=None, metavar="DIR",
                    help="an index folder, or 'demo' (repeatable; default: demo)")
    sc.add_argument("--metric", default="contains", choices=sorted(METRICS))
    sc.add_argument("--limit", type=int, default=None, help="first N records of each run")
    args = ap.parse_args(argv)
    if args.command == "drafts":
        try:
            n = write_drafts(args.dataset, data_dir_or_exit(args.data_dir), args.limit, args.out, sys.stderr.isatty())
        except (DatasetError, BenchError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{n} new drafts in {args.out / 'results.jsonl'}")
        return 0
    runs = {}
    for run in args.runs:
        records = [r for r in read_results(run) if "closed_book" in r][: args.limit]
        if not records:
            print(f"error: no single-step records in {run / 'results.jsonl'}", file=sys.stderr)
            return 2
        runs[run] = records
    print("| run | index | n | errors | pairing | ROC-AUC | 95 % CI | fires on wrong | fires on right "
          "| no claim (wrong) | ROC-AUC, claims only |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.corpus_index or ["demo"]:
        stats = open_index(spec)
        for run, records in runs.items():
            for p, row in score_run(records, stats, args.metric).items():
                print(f"| {run.name} | {Path(spec).name} ({stats.tokens:,} tok) | {row['n']} | {row['errors']} | {p} | "
                      f"{_f(row['roc_auc'])} | {_ci(row['ci95'])} | {_f(row['fires_on_wrong'], True)} | "
                      f"{_f(row['fires_on_right'], True)} | {row['no_claim']} ({row['no_claim_errors']}) | "
                      f"{_f(row['roc_auc_claims'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
