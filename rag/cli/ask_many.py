"""`arag ask --questions FILE --out answers.jsonl`: answer a file of questions, resumably.

One flushed JSON line per answer (what `arag ask --json` prints, plus the question's ``id``), in the
order answers finish. A rerun skips the ids already in ``--out`` and drops a line a kill cut short,
so nothing is lost or written twice; one writer at a time holds a lock on the file.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from corpora.atomic import complete_lines
from corpora.qa_files import DatasetError, QAExample, load_questions_file
from rag.cli.common import build_pipeline, check_trigger_flags, log_every, show_progress
from rag.errors import UsageError
from rag.loop import AdaptiveRAG
from rag.loop.batch import iter_answers
from rag.loop.trace import json_text


def _done_ids(out: Path) -> set[str]:
    """The ids already answered in ``out`` (a partial last line is cut off: that question runs again)."""
    done = set()
    for lineno, line in complete_lines(out, repair=True):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{out}:{lineno}: malformed answer line ({exc.msg} at column {exc.colno}); "
                             "remove it to answer that question again") from None
        if not isinstance(rec, dict) or "id" not in rec:
            raise UsageError(f"{out}:{lineno}: not an answer line of `arag ask --questions` (no id)")
        done.add(str(rec["id"]))
    return done


def _open_out(out: Path) -> TextIO:
    """``out`` opened for appending and locked, or a one-line error."""
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; --out names the answers file")
    try:
        fh = out.open("a", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{out}: cannot write ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise UsageError(f"another arag ask is writing to {out}") from None
    return fh


def run_file(args: argparse.Namespace) -> int:
    if args.out is None:
        raise UsageError("--questions needs --out FILE (one JSON line per answer)")
    if args.json:
        raise UsageError("--json applies to one question; with --questions every answer is a JSON line in --out")
    check_trigger_flags(args, args.trigger)
    try:
        examples = load_questions_file(args.questions, answers=False)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out).expanduser()
    with _open_out(out) as fh:
        done = _done_ids(out)
        todo = [e for e in examples if e.id not in done]
        if todo:
            progress = show_progress() if args.progress is None else args.progress
            _answer(build_pipeline(args).loop, todo, fh, args.batch_size, progress, log_every(args))
    print(f"arag ask: {len(todo)} answered, {len(examples) - len(todo)} already in {out}", file=sys.stderr)
    return 0


def _answer(loop: AdaptiveRAG, todo: list[QAExample], fh: TextIO, batch_size: int, progress: bool, every: int) -> None:
    """Answer ``todo``, a flushed line each as it finishes; a bar, or a line every ``every`` answers."""

    t0 = time.perf_counter()
    with tqdm(total=len(todo), desc="questions", unit="q", disable=not progress, mininterval=2.0) as bar:
        for n, (i, answer) in enumerate(iter_answers(loop.stepper, [e.question for e in todo], batch_size=batch_size), 1):
            fh.write(json_text({"id": todo[i].id, **answer.to_dict()}) + "\n")
            fh.flush()
            bar.update()
            if every and not progress and (n % every == 0 or n == len(todo)):
                print(f"arag ask: {n}/{len(todo)} questions ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
