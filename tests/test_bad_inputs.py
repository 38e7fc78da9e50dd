"""Inputs a new user tries that used to end in a traceback or pass silently: each is one line on
stderr and exit 2 now (most stop before any model loads, so these tests are fast)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import arag_here
from rag.cli import main


def one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture
def corpus(tmp_path) -> Path:
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(
        ["Paris is the capital of France.", "Lyon is a city in France."])) + "\n")
    return p


@pytest.fixture
def bm25_index(tmp_path, corpus) -> Path:
    out = tmp_path / "idx"
    assert main(["index", "build", str(corpus), "--out", str(out)]) == 0
    return out


def test_argparse_errors_are_one_line_and_help_stays_full(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ask", "q?", "--k", "many"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "arag ask: error: argument --k: not an integer: 'many' (see arag ask --help)\n"
    with pytest.raises(SystemExit) as exc:
        main(["ask", "--help"])
    assert exc.value.code == 0
    assert "usage: arag ask" in (help_text := capsys.readouterr().out) and "--trigger" in help_text and "--max-steps" in help_text


def test_edited_bm25_manifest_option(capsys, bm25_index):
    manifest = json.loads((bm25_index / "manifest.json").read_text())
    manifest["options"]["k1"] = "abc"
    (bm25_index / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(capsys, ["ask", "q?", "--index", str(bm25_index)], "manifest.json: invalid index options", "'abc'")


@pytest.mark.parametrize("argv, needle", [
    (["ask", "q?", "--trigger", "always+"], "empty trigger name in 'always+'"),
    (["ask", "q?", "--trigger", "always", "--threshold", "0.3"], "--threshold is read by none of the triggers (always); it applies to token-confidence, semantic-entropy"),
    (["ask", "q?", "--trigger", "semantic-entropy", "--aggregation", "max_entropy"], "--aggregation is read by none of the triggers (semantic-entropy); it applies to token-confidence"),
    (["ask", "q?", "--trigger", "token-confidence", "--samples", "5"], "--samples is read by none of the triggers (token-confidence); it applies to semantic-entropy, lexical-similarity"),
    (["ask", "q?", "--trigger", "msp", "--trigger-option", "samples=3"], "--trigger-option: msp has no setting 'samples' (msp takes: threshold)"),
    (["ask", "q?", "--trigger", "msp+never", "--trigger-option", "treshold=3"], "msp+never has no setting 'treshold' (did you mean 'threshold'?"),
    (["ask", "q?", "--trigger", "semantic-entropy", "--trigger-option", "samples=1"], "semantic-entropy: samples must be at least 2, got 1"),
    (["ask", "q?", "--trigger", "semantic-entropy", "--trigger-option", "estimator=vibes"], "estimator must be one of weighted, discrete, got 'vibes'"),
    (["ask", "q?", "--trigger", "semantic-entropy", "--samples", "4", "--trigger-option", "samples=5"], "--trigger-option samples: given twice (also as --samples)"),
    (["ask", "q?", "--trigger", "never", "--trigger-option", "x"], "--trigger-option 'x': expected KEY=VALUE"),
    (["index", "build", "CORPUS", "--retriever", "faiss", "--backend", "rank-bm25", "--out", "OUT"], "--backend applies to bm25 and hybrid"),
    (["index", "build", "CORPUS", "--index-type", "hnsw", "--out", "OUT"], "--index-type applies to faiss and hybrid"),
    (["index", "build", "CORPUS", "--chunk-overlap", "5", "--out", "OUT"], "--chunk-overlap needs --chunk-words"),
    (["ask", "q?", "--retriever", "faiss", "--index", "INDEX"], "is a bm25 index, not faiss"),
    (["ask", "q?", "--retriever", "elasticsearch", "--index", "INDEX"], "Elasticsearch reads --es-index"),
])
def test_flags_that_would_be_ignored_are_refused(capsys, tmp_path, corpus, bm25_index, argv, needle):
    subst = {"CORPUS": str(corpus), "OUT": str(tmp_path / "new"), "INDEX": str(bm25_index)}
    one_line_error(capsys, [subst.get(a, a) for a in argv], needle)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("content, needle", [
    ('{"id": "a", "text": "x"}\n{"id": "b" "text": "y"}\n', "c2.jsonl:2: malformed JSON (Expecting ',' delimiter at column 12)"),
    ('{"id": "a", "text": "x"}\n\n{"id": "a", "text": "y"}\n', "c2.jsonl:3: duplicate document id 'a' (first at"),
])
def test_corpus_messages_name_file_line_and_column(capsys, tmp_path, content, needle):
    bad = tmp_path / "c2.jsonl"
    bad.write_text(content)
    err = one_line_error(capsys, ["index", "build", str(bad), "--out", str(tmp_path / "i")], needle)
    if "duplicate" in needle:
        assert "c2.jsonl:1)" in err


def test_model_argument_that_is_an_existing_file(capsys, tmp_path, corpus):
    (tmp_path / "some").mkdir()
    f = tmp_path / "some" / "file.txt"
    f.write_text("not a model")
    one_line_error(capsys, ["ask", "q?", "--corpus", str(corpus), "--model", str(f)], "a file that is not a model")


def test_nli_judge_path_that_does_not_exist():
    from triggers.base import TriggerConfigError
    from triggers.equivalence import make_judge

    with pytest.raises(TriggerConfigError, match="'/nonexistent': no such model folder"):
        make_judge("nli:/nonexistent")


# -- bench run folders --------------------------------------------------------------------------
@pytest.fixture
def run_folder(tmp_path, corpus) -> tuple[list[str], Path]:
    """A `bench --questions` run folder whose run.json matches the command (no model needed)."""
    from benchmarks.runner import parse_policies
    from corpora.atomic import write_json_atomic
    from rag.cli import build_parser
    from benchmarks.cli.bench import bench_config

    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "q1", "question": "capital of France?", "answers": ["Paris"]}\n')
    out = tmp_path / "run"
    out.mkdir()
    argv = ["bench", "--questions", str(qa), "--corpus", str(corpus), "--policies", "never", "--out", str(out), "--report-only"]
    write_json_atomic(out / "run.json", {"config": bench_config(build_parser().parse_args(argv), parse_policies("never")).key()})
    return argv, out


def test_report_only_with_a_damaged_run_json(capsys, run_folder):
    argv, out = run_folder
    (out / "run.json").write_text('{"config": {"dataset": ')
    one_line_error(capsys, argv, "run.json: damaged run manifest")


@pytest.mark.parametrize("record, needle", [
    ({"id": "q1", "question": "q", "answers": ["Paris"], "wall_seconds": 1.0}, "results.jsonl:1: result record lacks field(s) closed_book"),
    ({"id": "q1", "question": "q", "answers": ["Paris"], "wall_seconds": 1.0, "closed_book": {}, "signals": {},
      "extra_signals": {}, "rag": {}}, "results.jsonl: a result record is damaged"),
])
def test_report_only_with_a_damaged_result_record(capsys, run_folder, record, needle):
    argv, out = run_folder
    (out / "results.jsonl").write_text(json.dumps(record) + "\n")
    one_line_error(capsys, argv, needle)


def test_study_out_naming_a_file(capsys, data_dir, tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    one_line_error(capsys, ["study", "rephrase", "--data-dir", str(data_dir), "--limit", "1", "--out", str(f)],
                   "exists and is not a folder")


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    from benchmarks.datasets import QAExample
    from benchmarks.run_loop import run_questions

    examples = [QAExample(f"q{i}", "q?", ("a",)) for i in range(5)]
    n = run_questions(lambda ex: {"id": ex.id}, examples, tmp_path, set(), progress=False, log_every=2)
    assert n == 5
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(" questions")[0] for ln in lines] == ["arag bench: 2/5", "arag bench: 4/5", "arag bench: 5/5"]


# -- prompts longer than the model's context ----------------------------------------------------
def test_prompt_longer_than_the_context_is_refused_before_decoding(tiny_hub_home):
    from rag.models.hf_model import HFLanguageModel
    from rag.models.lm import ModelError

    snapshot = next((tiny_hub_home / "hub").glob("models--*/snapshots/*"))
    lm = HFLanguageModel.load(snapshot)
    assert lm.context_length == 4096
    with pytest.raises(ModelError, match=r"prompt of [\d,]+ tokens is longer than the model's context of 4,096 tokens"):
        lm.generate(["physics " * 5000])
    with pytest.raises(ModelError, match="longer than the model's context"):
        lm.score("physics " * 3000, "physics " * 2000)
    assert lm.usage.calls == 0  # nothing was decoded
    assert lm.generate(["physics"], max_new_tokens=2)[0][0].prompt_tokens < 4096


def test_cli_refuses_an_over_long_question(tiny_model_dir, tmp_path, corpus):
    r = arag_here("ask", "physics " * 5000, "--model", str(tiny_model_dir), "--corpus", str(corpus), "--trigger", "never")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "longer than the model's context of 4,096 tokens" in r.stderr and r.stderr.count("\n") == 1
