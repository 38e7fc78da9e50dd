"""Run the questions a run folder lacks: one flushed JSON line per question appended to
``results.jsonl`` (a killed run resumes with nothing lost or duplicated), with a progress bar on a
terminal and plain progress lines in a log."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from benchmarks.datasets import QAExample
from benchmarks.runner import RESULTS, BenchError, QuestionRunner
from corpora.jsonfloat import json_text
from rag.models.lm import ModelError


def run_questions(runner: QuestionRunner | Callable[[QAExample], dict], examples: Iterable[QAExample], out_dir: Path,
                  done: set[str], progress: bool = True, on_record: Callable[[dict], None] | None = None,
                  log_every: int = 0, batch_size: int = 1) -> int:
    """Run the examples not in ``done``, appending one flushed JSON line each; returns how many ran.
    ``progress`` draws a bar (a terminal); ``log_every=N`` prints a plain line every N questions
    instead (a log file or CI, where a bar is noise and silence looks like a hang); ``batch_size``:
    questions a `QuestionRunner` computes together (`QuestionRunner.run_many`)."""
    from tqdm import tqdm

    todo = [e for e in examples if e.id not in done]
    if isinstance(runner, QuestionRunner):
        run_many = (lambda batch: [runner.run(batch[0])]) if batch_size == 1 else runner.run_many
    else:
        run_many, batch_size = (lambda batch: [runner(batch[0])]), 1
    n, t0 = 0, time.perf_counter()
    with (out_dir / RESULTS).open("a", encoding="utf-8") as fh, \
            tqdm(total=len(todo), desc="questions", unit="q", disable=not progress, mininterval=2.0) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            try:
                records = run_many(batch)
            except ModelError as exc:  # e.g. a question longer than the model's context
                raise BenchError(f"question {batch[0].id if len(batch) == 1 else 'among ' + ', '.join(e.id for e in batch)}: {exc}") from None
            for record in records:
                fh.write(json_text(record, default=str) + "\n")
                fh.flush()
                done.add(record["id"])
                n += 1
                bar.update()
                if on_record is not None:
                    on_record(record)
                if log_every and not progress and (n % log_every == 0 or n == len(todo)):
                    print(f"arag bench: {n}/{len(todo)} questions ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return n
