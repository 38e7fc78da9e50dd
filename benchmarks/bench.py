"""`arag bench`: wire dataset, retriever, model and triggers into the runner, then write the report."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks.datasets import QAExample, corpus_paths, load_dataset, shuffled
from benchmarks.policies import FIXED_POLICIES, gate_base
from benchmarks.report import write_report
from benchmarks.runner import (MANIFEST, RESULTS, BenchConfig, BenchError, QuestionRunner, prepare_run_dir, read_results,
                               read_run_manifest, writer_lock)
from benchmarks.run_loop import run_questions
from corpora.atomic import write_json_atomic
from corpora.qa_files import load_questions_file
from triggers.base import Trigger


def default_out_dir(config: BenchConfig, root: Path = Path("runs") / "bench") -> Path:
    """One folder per configuration, so rerunning the same command resumes and another one does not collide."""
    digest = hashlib.sha256(json.dumps(config.key(), sort_keys=True).encode()).hexdigest()[:8]
    return root / f"{config.dataset}-{config.retriever}-{config.corpus}-k{config.k}-{digest}"


def build_triggers(policies: tuple[str, ...], lm: Any, options: dict[str, Any]) -> dict[str, Trigger]:
    """Every non-fixed policy by name through the registry (``a+b`` = any of). QuCo without
    ``--corpus-index`` builds its demo index with the model's tokenizer."""
    from triggers.registry import applicable, build_trigger

    names = dict.fromkeys(gate_base(p)[0] for p in policies)  # NAME@gate uses NAME's trigger
    return {p: build_trigger(p, lm=lm, tokenizer=getattr(lm, "tokenizer", None), **applicable(p, options))
            for p in names if p not in FIXED_POLICIES}


def thresholds_of(triggers: dict[str, Trigger]) -> dict[str, Any]:
    return {name: getattr(t, "threshold", None) for name, t in triggers.items()}


def select(records: list[dict], examples: list[QAExample]) -> list[dict]:
    """The records of this invocation's examples, in dataset order (a folder may hold more)."""
    by_id = {r["id"]: r for r in records}
    return [by_id[e.id] for e in examples if e.id in by_id]


def load_examples(config: BenchConfig, data_dir: Path | None, limit: int | None = None) -> list[QAExample]:
    """The questions of this run, in run order: a shared set by name, or the user's QA file."""
    if config.questions:
        return shuffled(load_questions_file(config.questions), limit, config.shuffle_seed)
    if data_dir is None:
        raise BenchError(f"dataset {config.dataset} needs the shared data folder")
    return load_dataset(config.dataset, data_dir, config.split, config.relation, limit, config.shuffle_seed)


def corpus_files(config: BenchConfig, data_dir: Path | None) -> list[str] | None:
    """The corpus files to retrieve over; None when the run reads a saved index or an Elasticsearch index."""
    if config.corpus == "files":
        return list(config.sources or ())
    if config.corpus == "elasticsearch":  # sources: the ES index, then any files to index into it first
        return list((config.sources or ())[1:]) or None
    if config.corpus == "index":
        return None
    if data_dir is None:
        raise BenchError(f"--corpus {config.corpus} needs the shared data folder")
    return [str(p) for p in corpus_paths(config.dataset, data_dir, config.corpus)]


def check_out_dir(out_dir: Path) -> None:
    """Refuse an ``--out`` that cannot be a run folder before any model loads (an existing file,
    /dev/null, an unwritable place), with one line instead of a traceback."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BenchError(f"{out_dir}: exists and is not a folder; --out names the run folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{out_dir}: cannot create the run folder ({exc.strerror or exc})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise BenchError(f"{out_dir}: run folder is not writable")


def run_benchmark(config: BenchConfig, out_dir: Path, data_dir: Path | None, limit: int | None = None, *, lm: Any = None,
                  index: str | None = None, progress: bool = True, metric: str = "contains", command: str = "",
                  report_only: bool = False, retriever_options: dict[str, Any] | None = None,
                  log_every: int = 0, concurrency: int | None = None, batch_size: int = 1,
                  load_lm: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Run what is missing of ``config`` in ``out_dir`` (resuming), then write every report file.
    ``retriever_options``: Elasticsearch's ``es_url``/``es_index``/``es_mode``/``es_ca_file``;
    ``log_every``: without a progress bar, a line on stderr every N questions; ``concurrency``: requests
    in flight for an ``openai:`` model; ``batch_size``: questions computed together (neither is part of
    ``config``: they change the speed, not the results); ``load_lm``: loads the model by name when
    ``lm`` is None and a question is missing (default `load_language_model`; a multi-set run shares
    one). Returns the summary."""
    examples = load_examples(config, data_dir, limit)
    paths = None if index else corpus_files(config, data_dir)
    if report_only:
        return _report(read_existing(out_dir, config), examples, config, out_dir, metric)
    check_out_dir(out_dir)
    with writer_lock(out_dir):
        records = prepare_run_dir(out_dir, config)
        _run_missing(config, out_dir, data_dir, examples, records, paths, lm, index, progress, command,
                     retriever_options or {}, log_every, concurrency, batch_size, load_lm)
        return _report(read_results(out_dir, check=True), examples, config, out_dir, metric)


def read_existing(out_dir: Path, config: BenchConfig) -> list[dict]:
    return prepare_run_dir(out_dir, config, writing=False)


def _run_missing(config: BenchConfig, out_dir: Path, data_dir: Path | None, examples: list[QAExample], records: list[dict],
                 paths: list[str] | None, lm: Any, index: str | None, progress: bool, command: str,
                 retriever_options: dict[str, Any], log_every: int, concurrency: int | None = None,
                 batch_size: int = 1, load_lm: Callable[[str], Any] | None = None) -> None:
    """Open the retriever, model and triggers only when some question is still missing."""
    manifest_path = out_dir / MANIFEST
    run = read_run_manifest(out_dir)
    done = {r["id"] for r in records}
    if any(e.id not in done for e in examples):
        t0 = time.perf_counter()
        from retrievers.components import open_retriever
        from rag.pipeline import load_language_model

        retriever = open_retriever(config.retriever, index=index, corpus=paths, progress=progress, **retriever_options)
        lm = lm or (load_lm or (lambda name: load_language_model(name, concurrency)))(config.model)
        triggers = build_triggers(config.policies, lm, config.trigger_options)
        gated = [gate_base(p)[0] for p in config.policies if gate_base(p)[1]]
        runner = QuestionRunner(lm, retriever, triggers, config.loop_config(), gated,
                                config.gated_loop_config() if config.relevance_gate is not None else None,
                                bool(config.gate_sweep))
        run.update(command=command, setup_seconds=time.perf_counter() - t0, thresholds=thresholds_of(triggers),
                   data_dir=str(data_dir) if data_dir else None, model_name=getattr(lm, "name", config.model))
        write_json_atomic(manifest_path, run)
        run_questions(runner, examples, out_dir, done, progress=progress, log_every=log_every, batch_size=batch_size)
    elif command and not run.get("command"):
        run["command"] = command
        write_json_atomic(manifest_path, run)


def with_report_gate(record: dict, config: BenchConfig) -> dict:
    """The record's gate as this report sets it (`benchmarks.runner.results_key`): a sweep's threshold,
    and whether a single-step answer abstains where the gate keeps nothing."""
    from rag.loop.run import ABSTENTION

    gate = {k: v for k, v in record["gate"].items() if k != "abstention"}
    if config.gate_sweep and config.relevance_gate is not None:
        gate["threshold"] = config.relevance_gate
    if config.abstain:
        gate["abstention"] = ABSTENTION
    return {**record, "gate": gate}


def _report(records: list[dict], examples: list[QAExample], config: BenchConfig, out_dir: Path, metric: str) -> dict[str, Any]:
    chosen = select(records, examples)
    chosen = [with_report_gate(r, config) if "gate" in r else r for r in chosen]
    if not chosen:
        raise BenchError(f"{out_dir}: no results yet for these questions")
    run = read_run_manifest(out_dir)
    try:
        return write_report(chosen, config.policies, out_dir, metric, run.get("thresholds"))
    except (KeyError, TypeError, AttributeError) as exc:  # a nested field of a hand-edited line; top-level ones are checked on reading
        raise BenchError(f"{out_dir / RESULTS}: a result record is damaged ({type(exc).__name__}: {exc}); "
                         "remove its line to recompute that question") from None
