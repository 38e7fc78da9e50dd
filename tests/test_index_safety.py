"""Index builds a user can kill, repeat or race: stale temporary folders are cleaned up, an index a
kill stranded in ``.<name>.old-*`` is named and restored, one writer per ``--out``, and ``--out .``
never touches the caller's folder."""
from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from rag.cli import main


@pytest.fixture
def corpus(tmp_path) -> Path:
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(
        ["Paris is the capital of France.", "Lyon is a city in France."])) + "\n")
    return p


def build(corpus: Path, out: Path | str) -> int:
    return main(["index", "build", str(corpus), "--out", str(out)])


def test_killed_builds_leave_nothing_behind_for_long(tmp_path, corpus):
    out = tmp_path / "idx"
    assert build(corpus, out) == 0
    dead = tmp_path / ".idx.tmp-deadbeef"  # what a SIGKILLed build leaves
    dead.mkdir()
    (dead / "half-written").write_text("x")
    assert build(corpus, out) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "idx"]


def test_an_index_stranded_by_a_kill_between_the_renames_is_named_then_restored(tmp_path, corpus, capsys):
    out = tmp_path / "idx"
    assert build(corpus, out) == 0
    stranded = tmp_path / ".idx.old-0badc0de"
    out.rename(stranded)  # killed after moving the old index aside, before moving the new one in
    (tmp_path / ".idx.tmp-0badc0de").mkdir()
    capsys.readouterr()
    assert main(["ask", "q?", "--index", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no such index directory" in err and str(stranded) in err and err.count("\n") == 1
    from retrievers.store import atomic_directory

    with pytest.raises(RuntimeError):  # even a build that then fails puts the stranded index back first
        with atomic_directory(out):
            raise RuntimeError("embedding failed")
    assert (out / "manifest.json").is_file() and not stranded.exists()
    from retrievers import load_index

    assert load_index(out).retrieve("capital of France", 1)[0].id == "d0"
    assert not list(tmp_path.glob(".idx.tmp-*"))


def test_one_writer_per_out(tmp_path, corpus, capsys):
    out = tmp_path / "idx"
    with open(tmp_path / ".idx.writer-lock", "a") as held:  # another build is running
        fcntl.flock(held, fcntl.LOCK_EX)
        assert build(corpus, out) == 2
    assert "another build is writing this index" in capsys.readouterr().err
    assert not out.exists()
    assert build(corpus, out) == 0


@pytest.mark.parametrize("target", [".", "..", "sub/.."])
def test_out_dot_never_touches_the_callers_folder(tmp_path, corpus, monkeypatch, capsys, target):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert build(corpus, target) == 2
    assert "refusing to build an index in place of the current folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.slow
def test_a_real_sigkill_mid_build_then_the_next_build(tmp_path, data_dir):
    """SIGKILL a FAISS build while it embeds (its temporary folder exists), then build again: the
    dead build's folder is gone and the new index loads."""
    import subprocess
    import sys
    import time

    corpus = data_dir / "flashrag_toy" / "sample_data.jsonl"
    out = tmp_path / "idx"
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "index", "build", str(corpus), "--retriever", "faiss",
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob(".idx.tmp-*")):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert list(tmp_path.glob(".idx.tmp-*")) and not out.exists(), "the build was not killed mid-way"
    assert build(corpus, out) == 0
    from retrievers import load_index

    assert load_index(out).num_documents == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
