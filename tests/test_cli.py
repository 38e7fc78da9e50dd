"""The `arag` command: one JSON object with --json, and every bad input → one line, exit 2, no traceback."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import arag_here

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def arag(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`arag` as a user runs it: its own process (a test of what the process prints and exits with)."""
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


def assert_user_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    p = d / "c.jsonl"
    p.write_text("\n".join(json.dumps({"id": f"d{i}", "title": t, "text": x}) for i, (t, x) in enumerate([
        ("OPEC", "OPEC has 14 member countries as of 2018."),
        ("Paris", "Paris is the capital of France."),
        ("Lyon", "Lyon is a city in France.")])) + "\n")
    return p


@pytest.mark.slow
def test_ask_json_prints_one_object(corpus):
    r = arag("ask", "how many countries are a part of opec", "--corpus", str(corpus), "--trigger", "always", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)  # exactly one JSON object, nothing else on stdout
    assert isinstance(out["answer"], str) and out["retrieved"] is True
    assert out["steps"] and {"draft", "score", "fired", "query", "passage_ids", "text"} <= set(out["steps"][0])
    assert {"lm_calls", "retriever_calls", "prompt_tokens", "generated_tokens", "seconds"} <= set(out["costs"])
    assert out["steps"][0]["passage_ids"][0] == "d0"


@pytest.mark.slow
def test_index_build_then_ask_from_the_index(corpus, tmp_path):
    out = tmp_path / "idx"
    r = arag("index", "build", str(corpus), "--retriever", "bm25", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "manifest.json").exists()
    r = arag("ask", "capital of France", "--index", str(out), "--trigger", "never", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["costs"]["retriever_calls"] == 0


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question(question):
    assert_user_error(arag_here("ask", question), "question is empty")


def test_missing_corpus(tmp_path):
    assert_user_error(arag_here("ask", "q?", "--corpus", str(tmp_path / "nope.jsonl")), "nope.jsonl")


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": \n')
    assert_user_error(arag_here("index", "build", str(p), "--out", str(tmp_path / "i")), "bad.jsonl:2", "malformed JSON")


def test_document_without_text(tmp_path):
    p = tmp_path / "notext.jsonl.gz"
    with gzip.open(p, "wt") as fh:
        fh.write('{"id": "a", "text": "fine"}\n{"id": "b", "title": "no text"}\n')
    assert_user_error(arag_here("index", "build", str(p), "--out", str(tmp_path / "i")), "notext.jsonl.gz:2", "no text")


def test_missing_index_dir(tmp_path):
    assert_user_error(arag_here("ask", "q?", "--index", str(tmp_path / "missing")), "missing")


def test_mismatched_index_dir(tmp_path, corpus):
    out = tmp_path / "idx"
    assert arag_here("index", "build", str(corpus), "--out", str(out)).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["corpus_fingerprint"] = "0" * 16
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = arag_here("ask", "q?", "--index", str(out))
    assert_user_error(r, "does not match the manifest")


def test_unknown_model_while_offline(corpus):
    assert_user_error(arag_here("ask", "q?", "--corpus", str(corpus), "--model", "no-such-org/no-such-model"), "no-such-org/no-such-model")


def test_model_path_that_does_not_exist(corpus, tmp_path):
    assert_user_error(arag_here("ask", "q?", "--corpus", str(corpus), "--model", str(tmp_path / "m.gguf")), "not found")


@pytest.mark.parametrize("k", ["0", "-3"])
def test_k_must_be_positive(k):
    r = arag_here("ask", "q?", "--k", k)
    assert r.returncode == 2 and "positive integer" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("threshold", ["nan", "inf", "abc"])
def test_threshold_must_be_finite(threshold):
    r = arag_here("ask", "q?", "--threshold", threshold)
    assert r.returncode == 2 and "--threshold" in r.stderr and "Traceback" not in r.stderr


def test_failed_build_leaves_existing_index_intact(tmp_path, corpus):
    out = tmp_path / "idx"
    assert arag_here("index", "build", str(corpus), "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "ok"}\n{"id": "y"}\n')
    assert_user_error(arag_here("index", "build", str(bad), "--out", str(out)), "bad.jsonl:2")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("flags,needle", [(("--no-repeat-ngram-size", "-1"), "no_repeat_ngram_size"),
                                          (("--repetition-penalty", "0"), "repetition_penalty")])
def test_bad_repetition_controls(corpus, flags, needle):
    assert_user_error(arag_here("ask", "q", "--corpus", str(corpus), *flags), needle)


def test_bad_loop_table_in_the_config_file(corpus, tmp_path):
    cfg = tmp_path / "arag.toml"
    cfg.write_text('[loop]\nno_repeat_ngram_size = "three"\n')
    assert_user_error(arag_here("ask", "q", "--corpus", str(corpus), "--config", str(cfg)), "[loop] no_repeat_ngram_size")
