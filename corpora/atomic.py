"""Atomic writes: an index directory or a result file is either the old one or the new one, whole.

Indexes (`corpora.infinigram_index`, `retrievers.store`) are built in a temporary sibling
directory and renamed into place once complete; result files (benchmark summaries, reports) are
written to a temporary sibling file and renamed. A failed or interrupted write never damages
what is already at the destination. This module sits in the lowest layer so every package can
use it.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from corpora.errors import CorpusError

MANIFEST_NAME = "manifest.json"


@contextmanager
def atomic_directory(out_dir: str | Path, *, marker: str = MANIFEST_NAME,
                     error: type[ValueError] = CorpusError) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``out_dir``; on success it replaces ``out_dir``, on error it vanishes.

    A non-empty ``out_dir`` without ``marker`` (the file that makes a directory an index) is not
    ours to replace: that is refused with ``error`` before anything is written. The old index is
    moved aside only after the new one is complete, then deleted; if the new one cannot be moved
    into place the old one is moved back. Linux cannot swap two directories in one rename, so a
    crash between the two renames leaves the old index in a ``.<name>.old-*`` sibling rather than
    losing it.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise error(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise error(f"{out}: refusing to replace a non-empty directory that is not an index")
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)  # mkdir, not mkdtemp: the index gets the user's umask, not 0700
    except OSError as exc:
        raise error(f"{out}: cannot create index directory ({exc})") from None
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if out.exists():
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old.exists():
                old.rename(out)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines untranslated) to a temporary sibling, then rename it over ``path``."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        # open(..., "x"), not mkstemp: the file gets the user's umask, not 0600
        with tmp.open("x", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """`write_text_atomic` of ``obj`` as indented JSON (non-ASCII kept, unknown types as ``str``)."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")

