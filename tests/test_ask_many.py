"""`arag ask --questions FILE --out FILE`: one JSON line per question, resumable, bad input → exit 2.
Runs the CLI in this process on the tiny model's folder (tests/conftest.py), so that each call takes a
second; a kill mid-line is a cut-off last line, as a killed writer leaves it."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import arag_here

QUESTIONS = ["how many countries are a part of opec", "what is the capital of france", "where is lyon"]


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": f"d{i}", "title": t, "text": x}) for i, (t, x) in enumerate([
        ("OPEC", "OPEC has 14 member countries as of 2018."), ("Paris", "Paris is the capital of France."),
        ("Lyon", "Lyon is a city in France.")])) + "\n")
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "a", "question": QUESTIONS[0], "answers": ["14"]}) + "\n"
                         + json.dumps({"question": QUESTIONS[1]}) + "\n"  # no id, no answers: both optional
                         + json.dumps({"id": "c", "question": QUESTIONS[2]}) + "\n")
    return corpus, questions


def ask(model: Path, corpus: Path, *args: str) -> subprocess.CompletedProcess:
    return arag_here("ask", "--model", str(model), "--corpus", str(corpus), "--trigger", "always", "--max-steps", "2", *args)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_answers_every_question_and_resumes_after_a_kill(tiny_model_dir, files, tmp_path):
    corpus, questions = files
    out = tmp_path / "answers.jsonl"
    r = ask(tiny_model_dir, corpus, "--questions", str(questions), "--out", str(out), "--batch-size", "2")
    assert r.returncode == 0, r.stderr
    first = {rec["id"]: rec for rec in lines(out)}
    assert set(first) == {"a", "q:1", "c"}
    one = ask(tiny_model_dir, corpus, QUESTIONS[0], "--json")
    assert {k for k in first["a"] if k != "id"} == set(json.loads(one.stdout))  # the --json object plus the id
    assert first["a"]["answer"] == json.loads(one.stdout)["answer"]  # batched answers equal one-by-one ones
    assert first["a"]["question"] == QUESTIONS[0] and first["a"]["steps"][0]["passage_ids"]

    # a kill mid-line: one answer kept, the next cut short; the rerun drops the stub and answers the rest once
    out.write_text(json.dumps(first["a"]) + "\n" + json.dumps(first["c"])[:40], encoding="utf-8")
    r = ask(tiny_model_dir, corpus, "--questions", str(questions), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "2 answered, 1 already" in r.stderr
    again = lines(out)
    assert sorted(rec["id"] for rec in again) == ["a", "c", "q:1"]
    assert {rec["id"]: rec["answer"] for rec in again} == {k: v["answer"] for k, v in first.items()}


@pytest.mark.parametrize("content, needle", [
    ('{"question": "ok"}\n{"question": \n', "q.jsonl:2: malformed JSON"),
    ('{"question": "ok"}\n{"id": 1}\n', "q.jsonl:2: missing field 'question'"),
    ('{"id": 1, "question": "a"}\n{"id": 1, "question": "b"}\n', "q.jsonl:2: duplicate id"),
])
def test_a_bad_questions_line_names_file_and_line(tiny_model_dir, files, tmp_path, content, needle):
    corpus, questions = files
    questions.write_text(content)
    r = ask(tiny_model_dir, corpus, "--questions", str(questions), "--out", str(tmp_path / "o.jsonl"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert needle in r.stderr, r.stderr


@pytest.mark.parametrize("args, needle", [
    ((), "give a question or --questions FILE"),
    (("why", "--questions", "q.jsonl"), "not both"),
    (("--questions", "{q}"), "--questions needs --out"),
    (("why", "--out", "x.jsonl"), "--out applies to --questions"),
    (("--questions", "{q}", "--out", "{q}", "--batch-size", "0"), "--batch-size"),
    (("--questions", "{q}", "--out", "{dir}"), "is a folder"),
])
def test_bad_ask_many_arguments(tiny_model_dir, files, tmp_path, args, needle):
    corpus, questions = files
    args = tuple(a.format(q=questions, dir=tmp_path) for a in args)
    r = ask(tiny_model_dir, corpus, *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert needle in r.stderr, r.stderr
