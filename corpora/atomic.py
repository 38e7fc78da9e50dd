"""Atomic writes: an index directory or a result file is either the old one or the new one, whole.

Indexes (`corpora.infinigram_index`, `retrievers.store`) are built in a temporary sibling
directory and renamed into place once complete; result files (benchmark summaries, reports) are
written to a temporary sibling file and renamed. A failed or interrupted write never damages
what is already at the destination. This module sits in the lowest layer so every package can
use it.
"""
from __future__ import annotations

import fcntl
import glob
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
    ours to replace: that is refused with ``error`` before anything is written, as is the caller's
    own folder (``--out .``) or one containing it. One writer per ``out_dir`` (a lock file beside
    it): a second concurrent build is refused instead of silently replacing the first. The old
    index is moved aside only after the new one is complete, then deleted; if the new one cannot be
    moved into place the old one is moved back. Linux cannot swap two directories in one rename,
    so a kill between the two renames leaves the old index in a ``.<name>.old-*`` sibling: the next
    build restores it (and removes the temporary folders of killed builds) before it starts.
    """
    out = Path(os.path.abspath(out_dir))  # "." and "a/.." get a real name and parent
    cwd = Path.cwd().resolve()
    if out.resolve() == cwd or out.resolve() in cwd.parents:
        raise error(f"{out_dir}: refusing to build an index in place of the current folder (or one containing it); "
                    "name a new folder, e.g. --out my_index")
    if out.exists() and not out.is_dir():
        raise error(f"{out}: exists and is not a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{out}: cannot create index directory ({exc.strerror or exc})") from None
    with _writer_lock(out, error):
        _recover(out, marker)
        if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
            raise error(f"{out}: refusing to replace a non-empty directory that is not an index")
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()  # mkdir, not mkdtemp: the index gets the user's umask, not 0700
        except OSError as exc:
            raise error(f"{out}: cannot create index directory ({exc.strerror or exc})") from None
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


@contextmanager
def _writer_lock(out: Path, error: type[ValueError]) -> Iterator[None]:
    """An exclusive lock on ``.<name>.writer-lock`` beside ``out``, removed on release. A lock file
    unlinked by the previous holder may still be open here: then the path no longer names the locked
    file, and the build is refused like any other contention."""
    path = out.parent / f".{out.name}.writer-lock"
    busy = error(f"{out}: another build is writing this index; wait for it to finish or use another --out")
    try:
        fh = open(path, "a")
    except OSError as exc:
        raise error(f"{out}: cannot create index directory ({exc.strerror or exc})") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fh.fileno()).st_ino:
                raise busy
        except (BlockingIOError, FileNotFoundError):
            raise busy from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _leftovers(out: Path, kind: str) -> list[Path]:
    return sorted(out.parent.glob(f".{glob.escape(out.name)}.{kind}-*"), key=lambda p: p.stat().st_mtime)


def _recover(out: Path, marker: str) -> None:
    """What killed builds left (the caller holds the writer lock, so none of it is in use): put an
    index stranded in ``.<name>.old-*`` back when ``out`` is missing, delete the rest."""
    olds = [p for p in _leftovers(out, "old") if (p / marker).is_file()]
    if olds and not out.exists():
        olds.pop().rename(out)
    for p in _leftovers(out, "old") + _leftovers(out, "tmp"):
        shutil.rmtree(p, ignore_errors=True)


def stranded_index_hint(out: str | Path, marker: str = MANIFEST_NAME) -> str:
    """For "no such index directory": name the ``.<name>.old-*`` folder a killed build left the index in."""
    out = Path(os.path.abspath(out))
    olds = [p for p in _leftovers(out, "old") if (p / marker).is_file()] if out.parent.is_dir() else []
    if not olds:
        return ""
    return (f" (a build was killed while replacing it: the previous index is in {olds[-1]}; "
            f"rename it back, or rerun the build, which restores it first)")


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



def complete_lines(path: str | Path, repair: bool = False) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank complete lines of an append-only file (results written one
    flushed line at a time). A writer killed mid-line leaves a partial last line: it is dropped, and
    cut off the file when ``repair``, so a resumed run redoes that item once. Lines split on "\\n"
    only: str.splitlines() also breaks at U+2028, U+0085 and friends, which JSON strings written with
    ensure_ascii=False may contain (model output does)."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and repair:
        with path.open("r+b") as fh:
            fh.truncate(end)
    return [(n, line) for n, line in enumerate(data[:end].decode("utf-8").split("\n"), 1) if line.strip()]
