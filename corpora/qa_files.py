"""Question-and-answer files as one `QAExample` type: the readers of JSONL and CSV records (each
knowing its "path:line", so a bad field is one line naming the place) and the user's own QA file
(`arag ask --questions`, `arag bench --questions`).

Here, under every other package, because both the command line's batch answering and the benchmark
sets read these files; `benchmarks.datasets` builds its sets' loaders on the readers.
"""
from __future__ import annotations

import csv
import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator


class DatasetError(ValueError):
    """A dataset name, split or data folder the user gave does not exist or cannot be read."""


@dataclass(frozen=True)
class QAExample:
    id: str
    question: str
    answers: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)


# -- file readers ---------------------------------------------------------------------------------
class Record(dict):
    """One JSON object (or CSV row) of a data file; ``where`` is its "path:line". Loaders index
    fields directly, so a field a hand-edited or truncated file lacks is a one-line DatasetError
    naming the file and line rather than a bare KeyError."""

    def __init__(self, fields: dict, where: str) -> None:
        super().__init__(fields)
        self.where = where

    def __missing__(self, key: str) -> Any:
        raise DatasetError(f"{self.where}: missing field {key!r}")


def read_jsonl(path: Path) -> Iterator[Record]:
    if not path.exists():
        raise DatasetError(f"{path}: file not found (is the data folder complete?)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    where = f"{path}:{lineno}"
                    try:
                        # every object, nested ones too, so r["ctxs"][0]["title"] names the line as well
                        rec = json.loads(line, object_hook=lambda d: Record(d, where))
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
                    if not isinstance(rec, Record):
                        raise DatasetError(f"{where}: expected a JSON object, got {type(rec).__name__}")
                    yield rec
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # not gzip, truncated gzip, not UTF-8
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def read_csv(path: Path) -> Iterator[Record]:
    if not path.exists():
        raise DatasetError(f"{path}: file not found (is the data folder complete?)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                yield Record({k: v for k, v in row.items() if k is not None}, f"{path}:{reader.line_num}")
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None


def answers_of(values: Any, rec: Record) -> tuple[str, ...]:
    """The non-blank answers among ``values`` (a list read from ``rec``)."""
    if not isinstance(values, (list, tuple)):
        raise DatasetError(f"{rec.where}: expected a list of answers, got {type(values).__name__}")
    out = tuple(str(v) for v in values if str(v).strip())
    if not out:
        raise DatasetError(f"{rec.where}: question has no answer")
    return out


# -- the user's own QA file (`arag bench --questions FILE`) ---------------------------------------
QUESTION_FILE_SUFFIXES = (".jsonl", ".json", ".csv")
ANSWER_FIELDS = ("golden_answers", "answers", "answer")  # FlashRAG's name first


def _file_answers(rec: Record, csv_row: bool, need: bool = True) -> tuple[str, ...]:
    """The reference answers of a user record: a list, or one string. In a CSV cell a JSON list
    (``["Paris", "City of Paris"]``) or answers separated by ``|``. None there and not ``need``: ()."""
    name = next((f for f in ANSWER_FIELDS if f in rec), None)
    if name is None and not need:
        return ()
    if name is None:
        raise DatasetError(f"{rec.where}: no answers (expected a field {' or '.join(map(repr, ANSWER_FIELDS))})")
    value = rec[name]
    if isinstance(value, str):
        text = value.strip()
        if csv_row and text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{rec.where}: column {name!r} is not a JSON list ({exc.msg} at column {exc.colno})") from None
        else:
            value = [a.strip() for a in text.split("|")] if csv_row else [text]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    return answers_of(value, rec)


def load_questions_file(path: str | os.PathLike, answers: bool = True) -> list[QAExample]:
    """A user's QA file in file order: JSONL (one object per line) or CSV with a header, either
    optionally gzipped. Fields: ``question``; ``golden_answers`` (FlashRAG), ``answers`` or
    ``answer`` (optional when not ``answers``: `arag ask --questions`); ``id`` optional (default
    ``<file stem>:<n>``, n counting from 0) and unique."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: {'not a file' if p.exists() else 'questions file not found'}")
    name = p.name.lower().removesuffix(".gz")
    if not name.endswith(QUESTION_FILE_SUFFIXES):
        raise DatasetError(f"{p}: unsupported questions file (use .jsonl or .csv, optionally .gz)")
    is_csv = name.endswith(".csv")
    stem = Path(name).stem
    out: list[QAExample] = []
    seen: dict[str, str] = {}
    for i, rec in enumerate(read_csv(p) if is_csv else read_jsonl(p)):
        question = rec["question"]
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"{rec.where}: field 'question' must be a non-empty string")
        raw_id = rec.get("id")
        qid = str(raw_id) if raw_id not in (None, "") else f"{stem}:{i}"
        if qid in seen:
            raise DatasetError(f"{rec.where}: duplicate id {qid!r} (first at {seen[qid]})")
        seen[qid] = rec.where
        meta = {k: v for k, v in rec.items() if k not in ("id", "question", *ANSWER_FIELDS)}
        out.append(QAExample(qid, question.strip(), _file_answers(rec, is_csv, answers), meta))
    if not out:
        raise DatasetError(f"{p}: no questions in the file")
    return out
