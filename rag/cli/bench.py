"""`arag bench --dataset NAME`: compare retrieval policies on accuracy and cost, with threshold sweeps,
signal quality and a report with plots (see `benchmarks/runner.py` for what is computed once)."""
from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rag.cli.common import add_model_args, add_trigger_options, positive_int, show_progress
from retrievers.kinds import INDEX_KINDS

DEFAULT_POLICIES = "never,always,token-confidence"


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=True, help="a set in the data folder (nq_open, nq_open_oracle, hotpotqa_dev_distractor_500, "
                   "musique_ans_dev_200, popqa_longtail, entity_questions, triviaqa_sample_200, truthfulqa, flashrag_toy)")
    g.add_argument("--split", default=None, help="the dataset's split (default: its first; nq_open: dev | efficientqa-dev | efficientqa-test; entity_questions: dev | test)")
    g.add_argument("--relation", default=None, help="entity_questions: only this relation (e.g. P36)")
    g.add_argument("--limit", type=positive_int, default=None, help="first N questions of the (seeded) shuffled set")
    g.add_argument("--file-order", action="store_true", help="keep the file's order instead of a seeded shuffle")
    g.add_argument("--data-dir", default=None, help="the shared data folder (default: $ARAG_DATA_DIR, else ../shared/data)")


def add_policy_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("retrieval and triggers")
    g.add_argument("--retriever", default="bm25", choices=tuple(INDEX_KINDS), help="retriever kind (default: bm25)")
    g.add_argument("--corpus", default=None, choices=("own", "union"),
                   help="the set's own passages, or the union of every shared corpus (default: own when the set has passages)")
    g.add_argument("--index", default=None, metavar="DIR", help="a saved index instead of --corpus")
    g.add_argument("--k", type=positive_int, default=3, help="passages per retrieval (default: 3)")
    g.add_argument("--max-steps", type=positive_int, default=1,
                   help="sentences per answer (default: 1; above 1 every policy runs for real and sweeps are off)")
    g.add_argument("--seed", type=int, default=0, help="seed for triggers that sample (default: 0)")
    add_trigger_options(g)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="compare retrieval policies on accuracy and cost",
                       description="Benchmark retrieval policies. Per question the closed-book draft, every trigger's "
                                   "signal and the retrieval-augmented answer are computed once; policies and threshold "
                                   "sweeps are derived from them. Results are appended per question, so rerunning the "
                                   "same command resumes.")
    add_data_args(p)
    p.add_argument("--policies", default=DEFAULT_POLICIES,
                   help="comma-separated: never, always, or any trigger name of `arag ask --help` (a+b: any of) (default: %(default)s)")
    add_policy_args(p)
    add_model_args(p)
    p.add_argument("--metric", default="contains", choices=("contains", "em", "f1"), help="accuracy metric of the report (default: contains)")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default: runs/bench/<dataset>-...-<config hash>)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the results already in --out")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=run)


@contextmanager
def user_errors() -> Iterator[None]:
    """Benchmark input errors become `UsageError`: one line on stderr, exit 2."""
    from benchmarks.datasets import DatasetError
    from benchmarks.runner import BenchError
    from rag.errors import UsageError

    try:
        yield
    except (DatasetError, BenchError) as exc:
        raise UsageError(str(exc)) from None


def bench_config(args: argparse.Namespace, policies: tuple[str, ...]):
    from benchmarks.datasets import default_corpus_choice
    from benchmarks.runner import BenchConfig
    from rag.cli.common import trigger_options

    options = {k: v for k, v in trigger_options(args).items() if v is not None and v != {}}
    return BenchConfig(dataset=args.dataset, policies=policies, split=args.split, relation=args.relation,
                       shuffle_seed=None if args.file_order else 0, retriever=args.retriever,
                       corpus=args.corpus or ("index" if args.index else default_corpus_choice(args.dataset)),
                       k=args.k, model=args.model, max_steps=args.max_steps, seed=args.seed, trigger_options=options)


def run(args: argparse.Namespace) -> int:
    from benchmarks.bench import default_out_dir, run_benchmark
    from benchmarks.datasets import resolve_data_dir
    from benchmarks.report import policy_table
    from benchmarks.runner import parse_policies

    with user_errors():
        data_dir = resolve_data_dir(args.data_dir)
        config = bench_config(args, parse_policies(args.policies))
        out = Path(args.out) if args.out else default_out_dir(config)
        command = "arag " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else ""
        summary = run_benchmark(config, out, data_dir, args.limit, index=args.index, progress=show_progress() if args.progress is None else args.progress,
                                metric=args.metric, command=command, report_only=args.report_only)
    print(policy_table(summary))
    print(f"\nreport: {out / 'REPORT.md'}")
    return 0
