"""A user's own data and models: a QA file (FlashRAG's format) benchmarked against a user corpus in
one command, and models / tokenizers named by hub id, loaded offline from the local hub cache."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_HUB_ID, arag_here


def arag(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture
def corpus(tmp_path) -> Path:
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps({"id": f"d{i}", "title": t, "text": x}) for i, (t, x) in enumerate([
        ("Paris", "Paris is the capital of France."),
        ("Nobel", "Wilhelm Conrad Röntgen got the first Nobel Prize in Physics.")])) + "\n")
    return p


@pytest.mark.slow
def test_model_by_hub_id_loads_from_the_offline_cache(tiny_hub_env, corpus):
    r = arag("ask", "capital of France", "--model", TINY_HUB_ID, "--corpus", str(corpus), "--trigger", "always",
             "--max-steps", "1", "--json", env=tiny_hub_env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["retrieved"] is True and out["costs"]["lm_calls"] == 2


def test_tokenizer_by_hub_id_for_a_corpus_index(tiny_hub_env, corpus, tmp_path):
    out = tmp_path / "cidx"
    r = arag("corpus", "index", str(corpus), "--out", str(out), "--tokenizer", TINY_HUB_ID, env=tiny_hub_env)
    assert r.returncode == 0, r.stderr
    assert (out / "manifest.json").is_file()


@pytest.mark.slow
def test_own_qa_file_benchmarks_and_calibrates_against_a_user_corpus(tiny_model_dir, data_dir, tmp_path):
    """FlashRAG's quick-start questions (``id``/``question``/``golden_answers``) and passages
    (``contents``), one command each; a second `bench` resumes (nothing re-run), `calibrate` reuses it.
    In this process, on the tiny model's folder (a hub id loads in its own test above)."""
    toy = data_dir / "flashrag_toy"
    out = tmp_path / "run"
    model = str(tiny_model_dir)
    bench = ("bench", "--questions", str(toy / "nq_test.jsonl"), "--corpus", str(toy / "sample_data.jsonl"),
             "--model", model, "--limit", "6", "--policies", "never,always,token-confidence", "--out", str(out))
    r = arag_here(*bench)
    assert r.returncode == 0, r.stderr
    assert "| token-confidence |" in r.stdout
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and all(json.loads(x)["id"].startswith("test_") for x in lines)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["questions"] == 6 and "token-confidence" in summary["sweeps"]
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "# Benchmark: nq_test" in report and "`sample_data.jsonl`" in report
    assert (out / "accuracy_vs_retrieval.png").read_bytes()[:4] == b"\x89PNG"
    again = arag_here(*bench)  # resume: every question is done, only the report is rebuilt
    assert again.returncode == 0, again.stderr
    assert (out / "results.jsonl").read_text(encoding="utf-8").splitlines() == lines
    cfg = tmp_path / "arag.toml"
    cal = arag_here("calibrate", "--trigger", "token-confidence", *bench[1:7], "--model", model, "--limit", "6",
                    "--out", str(tmp_path / "cal"), "--write-config", str(cfg))
    assert cal.returncode == 0, cal.stderr
    assert "held-out (3)" in cal.stdout and "threshold" in cfg.read_text(encoding="utf-8")


def test_questions_file_formats(tmp_path):
    """JSONL and CSV (gzipped too), FlashRAG's ``golden_answers`` and plain ``answers``; ids default to file:n."""
    import gzip

    from corpora.qa_files import load_questions_file

    jl = tmp_path / "qa.jsonl.gz"
    with gzip.open(jl, "wt", encoding="utf-8") as fh:
        fh.write('{"id": "a", "question": "q1?", "golden_answers": ["x", "y"]}\n\n{"question": "q2?", "answers": "z"}\n')
    got = load_questions_file(jl)
    assert [(e.id, e.question, e.answers) for e in got] == [("a", "q1?", ("x", "y")), ("qa:1", "q2?", ("z",))]
    csv_file = tmp_path / "qa.csv"
    csv_file.write_text('id,question,answers\nc1,"capital, of France?",Paris|City of Paris\nc2,q?,"[""1"", ""one""]"\n')
    got = load_questions_file(csv_file)
    assert [(e.id, e.question, e.answers) for e in got] == [("c1", "capital, of France?", ("Paris", "City of Paris")),
                                                           ("c2", "q?", ("1", "one"))]


@pytest.mark.parametrize("content, needle", [
    ('{"question": "q?", "answers": ["a"]}\n{"question": "q2?" \n', "qa.jsonl:2: malformed JSON (Expecting ',' delimiter at column"),
    ('{"question": "q?"}\n', "qa.jsonl:1: no answers"),
    ('{"answers": ["a"]}\n', "qa.jsonl:1: missing field 'question'"),
    ('{"question": "  ", "answers": ["a"]}\n', "qa.jsonl:1: field 'question' must be a non-empty string"),
    ('{"id": 1, "question": "q", "answers": ["a"]}\n{"id": "1", "question": "r", "answers": ["b"]}\n', "qa.jsonl:2: duplicate id '1' (first at"),
    ('{"question": "q", "answers": []}\n', "qa.jsonl:1: question has no answer"),
    ('\n', "qa.jsonl: no questions"),
])
def test_questions_file_errors_name_file_and_line(tmp_path, content, needle):
    from corpora.qa_files import DatasetError, load_questions_file

    p = tmp_path / "qa.jsonl"
    p.write_text(content)
    with pytest.raises(DatasetError) as err:
        load_questions_file(p)
    assert needle in str(err.value)


@pytest.mark.parametrize("extra, needle", [
    ((), "--questions needs the passages to retrieve from"),
    (("--corpus", "own"), "--corpus own is a named set's corpus"),
    (("--corpus", "CORPUS", "--index", "IDX"), "--corpus and --index are alternatives"),
    (("--corpus", "CORPUS", "--split", "dev"), "--split applies to --dataset"),
    (("--corpus", "CORPUS", "--out", "/dev/null"), "/dev/null: exists and is not a folder"),
    (("--corpus", "CORPUS", "--out", "/proc/nope/run"), "/proc/nope/run: cannot create the run folder"),
])
def test_bench_with_questions_refuses_incomplete_or_contradictory_sources(tmp_path, corpus, capsys, extra, needle):
    """One line and exit 2, before any model loads."""
    from rag.cli import main

    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "q?", "answers": ["a"]}\n')
    args = [str(corpus) if a == "CORPUS" else str(tmp_path) if a == "IDX" else a for a in extra]
    assert main(["bench", "--questions", str(qa), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_own_qa_bench_killed_mid_run_resumes_without_lost_or_duplicated_rows(tiny_hub_env, data_dir, tmp_path):
    """SIGKILL after the first result line, rerun the same command: every question exactly once."""
    import time

    toy = data_dir / "flashrag_toy"
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rag.cli", "bench", "--questions", str(toy / "nq_test.jsonl"), "--corpus",
           str(toy / "sample_data.jsonl"), "--model", TINY_HUB_ID, "--policies", "never,semantic-entropy",
           "--samples", "4", "--judge", "lexical", "--batch-size", "4", "--out", str(out)]
    # batches of 4 (each batch's lines are written together): the kill after the first line leaves ≥ 10 to resume
    proc = subprocess.Popen(cmd, env=tiny_hub_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 1:
            proc.kill()
            break
        time.sleep(0.02)
    proc.wait()
    killed_at = results.read_bytes().count(b"\n")
    assert 1 <= killed_at < 17, "the run was not killed mid-way"
    done = arag(*cmd[3:], env=tiny_hub_env)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(x)["id"] for x in results.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids) == sorted(f"test_{i}" for i in range(17))
    assert "arag bench: 10/" in done.stderr  # no terminal here: progress lines, not a bar
