"""`arag bench --dataset NAME`: compare retrieval policies on accuracy and cost, with threshold sweeps,
signal quality and a report with plots (see `benchmarks/runner.py` for what is computed once)."""
from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rag.cli.common import (add_batch_size_arg, add_elasticsearch_args, add_model_args, add_retriever_arg, add_trigger_options,
                            finite_float, log_every, positive_int, show_progress)

DEFAULT_POLICIES = "never,always,token-confidence"


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (--dataset NAME, or your own --questions FILE with --corpus PATH... or --index DIR)")
    which = g.add_mutually_exclusive_group(required=True)
    which.add_argument("--dataset", help="a set in the data folder (nq_open, nq_open_oracle, hotpotqa_dev_distractor_500, "
                       "musique_ans_dev_200, popqa_longtail, entity_questions, triviaqa_sample_200, truthfulqa, flashrag_toy); "
                       "a,b,c: each set into OUT/<set>, then one table of adaptive gain per (trigger, set) and a heatmap")
    which.add_argument("--questions", metavar="FILE", help="your QA file: JSONL or CSV (.gz too) with question and "
                       "golden_answers | answers (FlashRAG's format works); see docs/benchmarks.md")
    g.add_argument("--split", default=None, help="the dataset's split (default: its first; nq_open: dev | efficientqa-dev | efficientqa-test; entity_questions: dev | test)")
    g.add_argument("--relation", default=None, help="entity_questions: only this relation (e.g. P36)")
    g.add_argument("--limit", type=positive_int, default=None, help="first N questions of the (seeded) shuffled set")
    g.add_argument("--file-order", action="store_true", help="keep the file's order instead of a seeded shuffle")
    g.add_argument("--data-dir", default=None, help="the shared data folder (default: $ARAG_DATA_DIR, else ../shared/data)")


def add_policy_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("retrieval and triggers")
    add_retriever_arg(g)
    g.add_argument("--corpus", default=None, nargs="+", metavar="PATH",
                   help="own | union (a named set's passages, or every shared corpus; default: own when the set has "
                        "passages), or your corpus: JSONL(.gz) files or folders of .txt/.md")
    g.add_argument("--index", default=None, metavar="DIR", help="a saved index (from `arag index build`) instead of --corpus")
    g.add_argument("--k", type=positive_int, default=3, help="passages per retrieval (default: 3)")
    g.add_argument("--max-steps", type=positive_int, default=1,
                   help="sentences per answer (default: 1; above 1 every policy runs for real and sweeps are off)")
    g.add_argument("--seed", type=int, default=0, help="seed for triggers that sample (default: 0)")
    add_elasticsearch_args(g, mode_help="Elasticsearch query: BM25, kNN over MiniLM vectors, or both fused with RRF")
    add_trigger_options(g)
    from retrievers.relevance import DEFAULT_GATE_THRESHOLD

    g.add_argument("--relevance-gate", type=finite_float, nargs="?", const=DEFAULT_GATE_THRESHOLD, default=None, metavar="THRESHOLD",
                   help="the relevance gate of the NAME@gate policies (default: [loop] relevance_gate in --config, "
                        f"else {DEFAULT_GATE_THRESHOLD})")
    g.add_argument("--relevance-gate-sweep", dest="gate_sweep", action="store_true",
                   help="keep the NAME@gate drafts for every number of kept passages, so that `arag calibrate "
                        "--relevance-gate` can choose the threshold from this run (k-1 more drafts per question)")
    g.add_argument("--abstain", action="store_true",
                   help="NAME@gate policies answer 'I could not find this in the documents.' where the gate keeps "
                        "nothing (counted wrong; the report adds abstention rate and selective accuracy)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="compare retrieval policies on accuracy and cost",
                       description="Benchmark retrieval policies. Per question the closed-book draft, every trigger's "
                                   "signal and the retrieval-augmented answer are computed once; policies and threshold "
                                   "sweeps are derived from them. Results are appended per question, so rerunning the "
                                   "same command resumes.")
    add_data_args(p)
    p.add_argument("--policies", default=DEFAULT_POLICIES,
                   help="comma-separated: never, always, or any trigger name of `arag ask --help` (a+b: any of; learned:PATH; "
                        "cascade:CHEAP,COSTLY takes the next name as COSTLY) (default: %(default)s)")
    add_policy_args(p)
    add_model_args(p)
    p.add_argument("--metric", default="contains", choices=("contains", "em", "f1"), help="accuracy metric of the report (default: contains)")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default: runs/bench/<dataset>-...-<config hash>; several sets: runs/bench/multi-...)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the results already in --out")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    add_batch_size_arg(p)
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
    """The run's settings from the command line: which questions, which passages, which policies."""
    from benchmarks.datasets import default_corpus_choice
    from benchmarks.runner import BenchConfig
    from rag.cli.common import check_trigger_flags, trigger_options

    from benchmarks.policies import gate_base

    names = ",".join(gate_base(p)[0] for p in policies)
    check_trigger_flags(args, names)
    gate = _gate_threshold(args, policies)
    # the settings, not where they came from, determine the results (and so the run folder)
    options = {k: v for k, v in trigger_options(args, names).items() if v is not None and v != {} and k != "config_file"}
    questions = _questions_file(args)
    retriever, corpus, sources = _retrieval_source(args, questions is not None)
    if corpus is None:
        corpus = default_corpus_choice(args.dataset)
    return BenchConfig(dataset=args.dataset or _file_label(questions), policies=policies, split=args.split,
                       relation=args.relation, shuffle_seed=None if args.file_order else 0, retriever=retriever,
                       corpus=corpus, k=args.k, model=args.model, max_steps=args.max_steps, seed=args.seed,
                       trigger_options=options, questions=str(questions) if questions else None,
                       questions_sha256=_sha256(questions) if questions else None, sources=sources,
                       relevance_gate=gate, gate_sweep=getattr(args, "gate_sweep", None) or None,
                       abstain=args.abstain or None)


def _gate_threshold(args: argparse.Namespace, policies: tuple[str, ...]) -> float | None:
    """The gate of the NAME@gate policies: the flag, the config's [loop] relevance_gate, the default;
    None (and the flags refused) without such policies."""
    from benchmarks.policies import gate_base
    from benchmarks.runner import BenchError
    from rag.config import load_config
    from retrievers.relevance import DEFAULT_GATE_THRESHOLD, check_gate_threshold

    if not any(gate_base(p)[1] for p in policies):
        for flag, value in (("--relevance-gate", args.relevance_gate), ("--abstain", args.abstain or None),
                            ("--relevance-gate-sweep", getattr(args, "gate_sweep", None) or None)):
            if value is not None:
                raise BenchError(f"{flag} applies to NAME@gate policies (e.g. --policies always,always@gate); none is listed")
        return None
    from triggers.registry import base_part, trigger_parts

    if args.max_steps == 1:  # a single-step bench caches no gated branch after a question check (QuCo's)
        checked = [p for p in policies if gate_base(p)[1] and "quco" in map(base_part, trigger_parts(gate_base(p)[0]))]
        if checked:
            raise BenchError(f"{checked[0]}: a gated policy with QuCo's question check needs --max-steps 2 or more")
    if args.relevance_gate is not None:
        return check_gate_threshold(args.relevance_gate)
    table = load_config(getattr(args, "config", None)).get("loop", {})
    return check_gate_threshold(table.get("relevance_gate", DEFAULT_GATE_THRESHOLD))


def _questions_file(args: argparse.Namespace) -> Path | None:
    from benchmarks.runner import BenchError

    if not args.questions:
        return None
    for flag, value in (("--split", args.split), ("--relation", args.relation)):
        if value is not None:
            raise BenchError(f"{flag} applies to --dataset, not to --questions")
    path = Path(args.questions).expanduser()
    if not path.is_file():
        raise BenchError(f"{path}: questions file not found" if not path.exists() else f"{path}: not a file")
    return path.resolve()


def _file_label(path: Path | None) -> str:
    """A questions file's name without its suffixes (``nq_test.jsonl.gz`` → ``nq_test``): the run's label."""
    name = path.name if path else "questions"
    for suffix in (".gz", ".jsonl", ".json", ".csv"):
        name = name.removesuffix(suffix)
    return name or "questions"


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _retrieval_source(args: argparse.Namespace, own_questions: bool) -> tuple[str, str | None, tuple[str, ...] | None]:
    """(retriever kind, corpus label, sources): a shared set's corpus (``own``/``union``), corpus
    files, a saved index folder (its manifest says the kind), or an Elasticsearch index."""
    import os

    from benchmarks.runner import BenchError
    from retrievers.store import read_manifest

    corpus = args.corpus or []
    named = len(corpus) == 1 and corpus[0] in ("own", "union")
    files = tuple(str(Path(c).expanduser().resolve()) for c in corpus) if corpus and not named else ()
    if named and own_questions:
        raise BenchError(f"--corpus {corpus[0]} is a named set's corpus; with --questions give your corpus files (--corpus PATH...) or --index DIR")
    if args.index:
        if corpus:
            raise BenchError("--corpus and --index are alternatives: the index already holds its corpus")
        kind = read_manifest(Path(args.index)).kind
        if args.retriever not in (None, kind):
            raise BenchError(f"{args.index} is a {kind} index; drop --retriever {args.retriever} (the index decides its kind)")
        return kind, "index", (str(Path(args.index).resolve()),)
    if args.retriever == "elasticsearch":
        es_index = args.es_index or os.environ.get("ARAG_ES_INDEX") or "arag"
        if named:
            raise BenchError("with --retriever elasticsearch, --corpus names files to index (or leave it out to use --es-index as it is)")
        return "elasticsearch", "elasticsearch", (f"es-index:{es_index}", *files)
    if files:
        return args.retriever or "bm25", "files", files
    if own_questions:
        raise BenchError("--questions needs the passages to retrieve from: --corpus PATH... or --index DIR "
                         "(or --retriever elasticsearch --es-index NAME)")
    return args.retriever or "bm25", corpus[0] if named else None, None


def retriever_options(args: argparse.Namespace) -> dict:
    """Where an Elasticsearch index is (credentials stay in the environment)."""
    if args.retriever != "elasticsearch":
        return {}
    return {"es_url": args.es_url, "es_index": args.es_index, "es_mode": args.es_mode, "es_ca_file": args.es_ca_file}


def data_dir_for(args: argparse.Namespace):
    """The shared data folder, which only a named set needs: with your own questions the own/union
    corpora are refused (`_retrieval_source`), and that error, not a missing data folder, is the one to show."""
    from benchmarks.datasets import resolve_data_dir

    if args.questions and args.data_dir is None:
        return None
    return resolve_data_dir(args.data_dir)


def command_line(name: str) -> str:
    """The command as typed, for the report (empty when called from Python)."""
    return "arag " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == [name] else ""


def run(args: argparse.Namespace) -> int:
    from benchmarks.bench import default_out_dir, run_benchmark
    from benchmarks.report import policy_table
    from benchmarks.runner import parse_policies
    from rag.pipeline import check_concurrency

    with user_errors():
        check_concurrency(args.model, args.concurrency)
        data_dir = data_dir_for(args)
        if args.dataset and "," in args.dataset:
            return run_many(args, data_dir, parse_policies(args.policies))
        config = bench_config(args, parse_policies(args.policies))
        out = Path(args.out) if args.out else default_out_dir(config)
        progress = show_progress() if args.progress is None else args.progress
        summary = run_benchmark(config, out, data_dir, args.limit, index=args.index, progress=progress,
                                metric=args.metric, command=command_line("bench"), report_only=args.report_only,
                                retriever_options=retriever_options(args), log_every=log_every(args),
                                concurrency=args.concurrency, batch_size=args.batch_size)
    print(policy_table(summary))
    print(f"\nreport: {out / 'REPORT.md'}")
    return 0


def _model_loader(concurrency: int | None):
    def load(name: str):
        from rag.pipeline import load_language_model

        return load_language_model(name, concurrency)

    return load


def run_many(args: argparse.Namespace, data_dir: Path, policies: tuple[str, ...]) -> int:
    """``--dataset a,b,c``: each set into ``OUT/<set>`` (resumable, one model for all), then the table
    of adaptive gain per (trigger, dataset) and its heatmap in ``OUT`` (`benchmarks/multi.py`)."""
    from benchmarks.bench import load_examples, run_benchmark
    from benchmarks.multi import default_multi_dir, parse_datasets, render, shared_loader, write_multi_report
    from benchmarks.runner import BenchError

    for flag, value in (("--split", args.split), ("--relation", args.relation)):
        if value is not None:
            raise BenchError(f"{flag} applies to one dataset; run that set on its own")
    names = parse_datasets(args.dataset)
    configs = [bench_config(argparse.Namespace(**{**vars(args), "dataset": name}), policies) for name in names]
    for config in configs:  # every set readable before the first one runs
        load_examples(config, data_dir, args.limit)
    out = Path(args.out) if args.out else default_multi_dir(configs)
    progress = show_progress() if args.progress is None else args.progress
    load = shared_loader(_model_loader(args.concurrency))
    summaries = {}
    for config in configs:
        summaries[config.dataset] = run_benchmark(
            config, out / config.dataset, data_dir, args.limit, index=args.index, progress=progress, metric=args.metric,
            command=command_line("bench"), report_only=args.report_only, retriever_options=retriever_options(args),
            log_every=log_every(args), load_lm=load, batch_size=args.batch_size)
    table = write_multi_report(summaries, out, command_line("bench"))
    print(render(table, "", None), end="")
    print(f"\nreport: {out / 'REPORT.md'}")
    return 0
