"""Benchmarks: metrics on hand-made cases, loaders on the shared data, policies derived from cached
records equal real loop runs, a resumable end-to-end `arag bench` on the default model, calibration
and the side studies."""
from __future__ import annotations

import gzip
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import arag_here
from benchmarks.metrics import contains, exact_match, normalize_answer, prr, rejection_area, roc_auc, token_f1


# -- metrics --------------------------------------------------------------------------------------
def test_squad_normalisation_and_answer_metrics():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple, a day") == "apple day"
    assert exact_match("the Beatles.", ["Beatles"]) == 1.0
    assert exact_match("The Beatles band", ["Beatles"]) == 0.0
    # F1: pred "john lennon wrote it" vs "john lennon": p = 2/4, r = 2/2 → 2·0.5·1/1.5
    assert token_f1("John Lennon wrote it", ["Paul", "John Lennon"]) == pytest.approx(2 / 3)
    assert token_f1("nothing", ["John Lennon"]) == 0.0
    assert contains("It was written by John Lennon in 1965.", ["john lennon"]) == 1.0
    assert contains("There are 1400 members", ["14"]) == 0.0  # word boundaries, not substrings
    assert contains("anything", ["the"]) == 0.0  # a reference that normalises to nothing never matches


def test_roc_auc_by_hand_and_against_scikit_learn():
    # errors scored 0.9, 0.4; correct 0.5, 0.1 → pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4
    assert roc_auc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == pytest.approx(0.75)
    assert roc_auc([0.3, 0.3], [True, False]) == pytest.approx(0.5)  # a tie counts one half
    assert roc_auc([1.0, 2.0], [True, True]) is None
    from sklearn.metrics import roc_auc_score

    rng = random.Random(3)
    scores = [round(rng.random(), 1) for _ in range(200)]  # rounded: many ties
    labels = [rng.random() < s for s in scores]
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_prr_by_hand():
    u, q = [0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0]
    # keep 1..4 most confident: 1, 1/2, 2/3, 1/2 → area 2/3; random 1/2; oracle (1, 1, 2/3, 1/2) → 19/24
    assert rejection_area(u, q) == pytest.approx(2 / 3)
    assert prr(u, q) == pytest.approx((2 / 3 - 1 / 2) / (19 / 24 - 1 / 2))  # = 4/7
    assert prr([0.1, 0.2, 0.3, 0.4], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert prr([0.4, 0.3, 0.2, 0.1], [1, 1, 0, 0]) == pytest.approx(-1.0)
    assert prr([0.5] * 4, [1, 1, 0, 0]) == pytest.approx(0.0)  # a constant score is chance, whatever the order
    assert prr([0.1, 0.2], [1, 1]) is None


# -- datasets -------------------------------------------------------------------------------------
def test_every_loader_reads_its_set(data_dir):
    from benchmarks.datasets import DATASETS, corpus_paths, load_dataset

    for name, spec in DATASETS.items():
        for split in spec.splits:
            examples = load_dataset(name, data_dir, split, limit=3)
            assert len(examples) == 3, (name, split)
            for ex in examples:
                assert ex.question.strip() and ex.answers and all(a.strip() for a in ex.answers), (name, ex)
        if spec.corpus:
            assert corpus_paths(name, data_dir, "own")[0].exists()
    assert len(load_dataset("nq_open_oracle", data_dir)) == 2655
    assert len(load_dataset("popqa_longtail", data_dir)) == 1399
    assert len(corpus_paths("nq_open", data_dir, "union")) == 5
    # the seeded shuffle is stable, and file order is available
    a = [e.id for e in load_dataset("triviaqa_sample_200", data_dir, limit=5)]
    assert a == [e.id for e in load_dataset("triviaqa_sample_200", data_dir, limit=5)]
    assert [e.id for e in load_dataset("triviaqa_sample_200", data_dir, limit=2, shuffle_seed=None)] == ["tqa:0", "tqa:1"]
    eq = load_dataset("entity_questions", data_dir, "test", relation="P36", limit=4)
    assert {e.metadata["relation"] for e in eq} == {"P36"}


def test_dataset_errors_are_clear(tmp_path, monkeypatch, data_dir):
    from benchmarks.datasets import DatasetError, corpus_paths, load_dataset, resolve_data_dir

    with pytest.raises(DatasetError, match="data folder not found"):
        resolve_data_dir(tmp_path / "missing")
    monkeypatch.setenv("ARAG_DATA_DIR", str(tmp_path / "also-missing"))
    with pytest.raises(DatasetError, match="ARAG_DATA_DIR"):
        resolve_data_dir()
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("squad", data_dir)
    with pytest.raises(DatasetError, match="no split"):
        load_dataset("nq_open", data_dir, "train")
    with pytest.raises(DatasetError, match="--corpus union"):
        corpus_paths("popqa_longtail", data_dir, "own")
    with pytest.raises(DatasetError, match="file not found"):
        load_dataset("triviaqa_sample_200", tmp_path)
    # a hand-edited file: every problem names the file and line (blank lines counted)
    bad = tmp_path / "triviaqa_sample_200" / "triviaqa_200.jsonl"
    bad.parent.mkdir()
    for text, message in [('{"question": "q", "answers": ["a"]}\n\n{"question": "q2"}\n', r"\.jsonl:3: missing field 'answers'"),
                          ('["q", "a"]\n', r"\.jsonl:1: expected a JSON object"),
                          ('{"question": "q", "answers": "Paris"}\n', r"\.jsonl:1: expected a list of answers"),
                          ('{"question": "q", "answers": [" "]}\n', r"\.jsonl:1: question has no answer")]:
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(DatasetError, match=message):
            load_dataset("triviaqa_sample_200", tmp_path)
    oracle = tmp_path / "nq_open_oracle" / "nq-open-oracle.jsonl.gz"
    oracle.parent.mkdir()
    oracle.write_bytes(gzip.compress(b'{"question": "q", "answers": ["a"], "ctxs": [{"text": "t"}]}\n'))
    with pytest.raises(DatasetError, match=r"\.gz:1: missing field 'title'"):  # nested objects too
        load_dataset("nq_open_oracle", tmp_path)


# -- policies from cached records (no model) ------------------------------------------------------
def _record(rid: str, score: float, closed: str, rag: str, answers=("Paris",)) -> dict:
    cost = {"lm_calls": 1, "retriever_calls": 0, "prompt_tokens": 10, "generated_tokens": 5, "seconds": 1.0}
    return {"id": rid, "question": f"q{rid}", "answers": list(answers), "wall_seconds": 3.0,
            "closed_book": {"text": closed, "tokens": 5, "costs": cost},
            "signals": {"token-confidence": {"score": score, "fired": score > 0.6, "costs": {**cost, "lm_calls": 0, "seconds": 0.0},
                                             "details": {"aggregation": "min_prob"}}},
            "rag": {"query": "q", "passage_ids": ["d1"], "text": rag,
                    "costs": {**cost, "retriever_calls": 1, "seconds": 2.0}}}


def test_policies_and_sweeps_derive_from_the_cache():
    from benchmarks.policies import outcome, sweep_cuts
    from benchmarks.report import summarize

    recs = [_record("a", 0.9, "Lyon", "Paris"), _record("b", 0.2, "Paris", "Paris"),
            _record("c", 0.7, "Nice", "Nice"), _record("d", 0.4, "Rome", "Paris")]
    assert outcome(recs[0], "never").text == "Lyon"
    o = outcome(recs[0], "token-confidence")
    assert (o.text, o.retrieved, o.costs["lm_calls"], o.costs["retriever_calls"], o.costs["seconds"]) == ("Paris", True, 2, 1, 3.0)
    assert outcome(recs[3], "token-confidence").text == "Rome"  # configured decision: 0.4 does not fire
    assert outcome(recs[3], "token-confidence", cut=0.3).text == "Paris"  # a lower cut fires
    assert sweep_cuts([0.9, 0.2, 0.7, 0.4], points=5)[0] == -math.inf
    few = {r["policy"]: r for r in summarize(recs, ["never", "always", "token-confidence"])["policies"]}
    assert few["token-confidence"]["gain"] is None and few["token-confidence"]["gain_note"] == "too few events (2)"
    s = summarize(recs, ["never", "always", "token-confidence"], min_events=0)  # the arithmetic, on 2 events
    rows = {r["policy"]: r for r in s["policies"]}
    assert rows["never"]["contains"] == 0.25 and rows["always"]["contains"] == 0.75
    assert rows["token-confidence"]["contains"] == 0.5 and rows["token-confidence"]["retrieval_rate"] == 0.5
    sweep = s["sweeps"]["token-confidence"]
    assert sweep[0]["retrieval_rate"] == 1.0 and sweep[0]["contains"] == 0.75  # cut −inf = always
    assert sweep[-1]["retrieval_rate"] == 0.0 and sweep[-1]["contains"] == 0.25  # top quantile = never
    sig = next(x for x in s["signals"] if x["signal"] == "token-confidence")
    assert sig["roc_auc"] == pytest.approx(1.0)  # wrong closed-book drafts a, c, d (0.9, 0.7, 0.4) all above b (0.2)
    # retrieval helps on a (0.9) and d (0.4), not on c (0.7) and b (0.2): 3 of 4 pairs ordered
    assert sig["roc_auc_helps"] == pytest.approx(0.75) and sig["helps"] == 2
    # curve (0,¼)→(¼,½)→(½,½)→(¾,¾)→(1,¾): area 0.5625; random 0.5; oracle (0,¼)→(½,¾)→(1,¾): 0.625
    assert s["references"]["oracle_area"] == pytest.approx(0.625) and s["references"]["random_area"] == pytest.approx(0.5)
    assert sig["gain"] == pytest.approx(0.5) and rows["token-confidence"]["gain"] == pytest.approx(0.5)
    assert rows["token-confidence"]["random_at_rate"] == pytest.approx(0.5)  # ¼ + ½·(¾ − ¼)
    assert rows["token-confidence"]["oracle_at_rate"] == pytest.approx(0.75)
    assert rows["token-confidence"]["vs_random"] == pytest.approx(0.0)
    assert rows["token-confidence"]["vs_best"]["policy"] == "always"
    assert s["catches"]["counts"]["token-confidence"] == {"fixes": 1, "unique_fixes": 1}


def _live_record(rid: str, score: str | float | None, closed: str, rag: str, tc: str) -> dict:
    cost = {"lm_calls": 1, "retriever_calls": 0, "prompt_tokens": 10, "generated_tokens": 5, "seconds": 1.0}
    step = None if score is None else {"score": score, "fired": True}
    return {"id": rid, "question": f"q{rid}", "answers": ["Paris"], "wall_seconds": 3.0, "live": {
        "never": {"text": closed, "retrieved": False, "costs": cost, "first_step": None, "pre_fired": False},
        "always": {"text": rag, "retrieved": True, "costs": {**cost, "lm_calls": 2}, "first_step": None, "pre_fired": False},
        "token-confidence": {"text": tc, "retrieved": tc == rag, "costs": cost, "first_step": step, "pre_fired": False}}}


def test_multi_step_records_with_infinite_scores_are_reported(tmp_path):
    """`--max-steps > 1` stores an empty draft's score as "inf": the report reads it back (issue 15.4)."""
    from benchmarks.report import write_report

    recs = [_live_record("a", "inf", "Lyon", "Paris", "Paris"), _live_record("b", 0.2, "Paris", "Paris", "Paris"),
            _live_record("c", "-inf", "Nice", "Rome", "Nice"), _live_record("d", None, "Rome", "Paris", "Paris")]
    s = write_report(recs, ["never", "always", "token-confidence"], tmp_path, resamples=50)
    sig = next(x for x in s["signals"] if x["signal"] == "token-confidence")
    # wrong closed-book a (inf) ranks above right b (0.2), wrong c (−inf) below it; d has no first step
    assert sig["n"] == 3 and sig["roc_auc"] == pytest.approx(0.5)
    assert "curves" in s and "token-confidence" not in s["curves"]  # live policies have no sweep
    row = next(r for r in s["policies"] if r["policy"] == "token-confidence")
    assert row["accuracy"] == 0.75 and row["accuracy_ci"] is not None and row["random_at_rate"] is not None
    assert json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))["questions"] == 4


def test_calibration_picks_on_one_half_and_converts_thresholds():
    from benchmarks.calibration import calibrate, threshold_setting
    from benchmarks.runner import BenchError

    recs = [_record(str(i), s, c, r) for i, (s, c, r) in enumerate(
        # even positions (calibration) | odd positions (held out)
        [(0.9, "x", "Paris"), (0.7, "x", "Paris"), (0.1, "Paris", "Paris"), (0.3, "Paris", "z"),
         (0.8, "x", "Paris"), (0.6, "x", "y"), (0.2, "Paris", "y"), (0.15, "Paris", "Paris")])]
    res = calibrate(recs, "token-confidence")
    cal_scores = sorted(r["signals"]["token-confidence"]["score"] for r in recs[0::2])
    assert cal_scores[1] < res["cut"] < cal_scores[2]  # fire on the two wrong drafts, not on the right ones
    assert res["calibration"]["chosen"]["contains"] == 1.0
    assert res["setting"] == {"threshold": pytest.approx(1 - res["cut"]), "aggregation": "min_prob"}
    assert res["held_out"]["questions"] == 4
    budget = calibrate(recs, "token-confidence", budget=0.25)
    assert budget["calibration"]["chosen"]["retrieval_rate"] <= 0.25
    assert threshold_setting("quco", -math.log1p(3.0), {})["threshold"] == pytest.approx(3.0)
    with pytest.raises(BenchError, match="aggregation"):
        threshold_setting("token-confidence", 1.0, {"aggregation": "flare"})


def test_a_partial_last_line_is_dropped_and_repaired(tmp_path):
    from benchmarks.runner import read_results

    (tmp_path / "results.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "tru', encoding="utf-8")
    assert [r["id"] for r in read_results(tmp_path, repair=True)] == ["a", "b"]
    assert (tmp_path / "results.jsonl").read_text(encoding="utf-8") == '{"id": "a"}\n{"id": "b"}\n'


COMMITTED_RUN = Path("docs/benchmarks/nq_open_oracle-60")  # the single-step benchmark of docs/benchmarks.md, results.jsonl included


def test_report_only_rebuilds_the_committed_run_without_the_model(tmp_path, repo_root, data_dir):
    """`arag bench --report-only` on the committed run: every policy and signal against random and the
    oracle with bootstrap intervals, the same numbers as the committed summary, no model loaded."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(repo_root / COMMITTED_RUN, out)
    committed = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for name in ("REPORT.md", "summary.json", "summary.csv", "accuracy_vs_retrieval.png", "accuracy_vs_cost.png", "signal_auc.png"):
        (out / name).unlink(missing_ok=True)
    cfg = json.loads((out / "run.json").read_text(encoding="utf-8"))["config"]
    n = (out / "results.jsonl").read_text(encoding="utf-8").count("\n")
    from unittest import mock

    with mock.patch("rag.pipeline.load_language_model", side_effect=AssertionError("--report-only loaded a model")):
        done = arag_here("bench", "--report-only", "--dataset", cfg["dataset"], "--limit", str(n), "--policies",
                         ",".join(cfg["policies"]), "--out", str(out), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "random at this rate" in done.stdout and "oracle at this rate" in done.stdout
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["questions"] == n and s["bootstrap"]["resamples"] >= 1000
    for row in s["policies"]:
        assert row["accuracy_ci"][0] <= row["accuracy"] <= row["accuracy_ci"][1]
        assert row["random_at_rate"] is not None and row["oracle_at_rate"] >= row["random_at_rate"] - 1e-9
    tc = next(r for r in s["policies"] if r["policy"] == "token-confidence")
    assert tc["gain_ci"][0] <= tc["gain"] <= tc["gain_ci"][1] and tc["vs_random_ci"] is not None
    for sig in s["signals"]:
        assert sig["roc_auc_ci"] is not None and sig["roc_auc_helps_ci"] is not None and sig["gain_ci"] is not None
    # the committed report was regenerated from these results with this code
    assert [(r["policy"], r["accuracy"], r.get("gain")) for r in s["policies"]] == \
        [(r["policy"], r["accuracy"], r.get("gain")) for r in committed["policies"]]
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "*random trigger*" in report and "*oracle*" in report and "bootstrap" in report
    assert all((out / f).stat().st_size > 0 for f in ("accuracy_vs_retrieval.png", "accuracy_vs_cost.png", "signal_auc.png"))


# -- real model -----------------------------------------------------------------------------------
QUESTIONS = ["who got the first nobel prize in physics", "how many episodes are there in dragon ball z",
             "where do the greasers live in the outsiders"]


@pytest.mark.slow
def test_derived_policies_equal_real_single_step_runs(default_lm, demo_docs):
    """The cached closed-book draft + signal + RAG answer give, at a real threshold, exactly the
    answer, retrieval and costs of `AdaptiveRAG(max_steps=1)`; samples are drawn once for two triggers."""
    from benchmarks.costs import LedgerState, Meter
    from benchmarks.datasets import QAExample
    from benchmarks.policies import outcome
    from rag.loop import AdaptiveRAG, LoopConfig
    from retrievers import build_retriever
    from triggers import AnyOf, TokenConfidence
    from triggers.semantic_entropy import SemanticEntropy

    retriever = build_retriever("bm25", demo_docs, progress=False)
    config = LoopConfig(max_steps=1)
    se = SemanticEntropy(samples=3)
    triggers = {"token-confidence": TokenConfidence(), "semantic-entropy": se,
                "token-confidence+semantic-entropy": AnyOf([TokenConfidence(), se], name="token-confidence+semantic-entropy")}
    from benchmarks.runner import QuestionRunner

    runner = QuestionRunner(default_lm, retriever, triggers, config)
    records = [runner.run(QAExample(str(i), q, ("x",))) for i, q in enumerate(QUESTIONS[:2])]
    probs = sorted(r["signals"]["token-confidence"]["details"]["min_prob"] for r in records)
    theta = (probs[0] + probs[1]) / 2  # fires on one question, not on the other
    for rec, q in zip(records, QUESTIONS):
        derived = outcome(rec, "token-confidence", cut=1.0 - theta)
        real = AdaptiveRAG(default_lm, retriever, TokenConfidence(threshold=theta), config=config).answer(q)
        assert derived.text == real.text
        assert derived.retrieved == real.retrieved
        for key in ("lm_calls", "retriever_calls", "prompt_tokens", "generated_tokens"):
            assert derived.costs[key] == getattr(real.costs, key), key
        se_sig, both = rec["signals"]["semantic-entropy"], rec["signals"]["token-confidence+semantic-entropy"]
        assert se_sig["details"]["sample_calls"] == 1  # the combination reused the samples...
        assert both["costs"]["lm_calls"] == se_sig["costs"]["lm_calls"] == 1  # ...and is charged for them alone
        assert both["costs"]["generated_tokens"] == se_sig["costs"]["generated_tokens"] > 0
    assert sum(outcome(r, "token-confidence", cut=1.0 - theta).retrieved for r in records) == 1
    # the benchmark's step state is the loop's
    loop = AdaptiveRAG(default_lm, retriever, TokenConfidence(), config=config)
    state = loop.step_state("q", "", None, 0, "p")
    copy = LedgerState.of(state, Meter(default_lm))
    assert all(getattr(copy, f) == getattr(state, f) for f in ("question", "prompt", "max_new_tokens", "stop", "seed", "sampler"))


def _bench_cmd(out: Path, limit: int) -> list[str]:
    return [sys.executable, "-m", "rag.cli", "bench", "--dataset", "nq_open_oracle", "--limit", str(limit),
            "--policies", "never,token-confidence", "--batch-size", "2", "--out", str(out)]  # pairs: a kill can land mid-run


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, data_dir, repo_root, default_lm):
    """A 5-question `arag bench` killed after 2 questions, then resumed to the end (the same command, in this
    process on the session's model: the resume is the command's code, the kill needed a process)."""
    out = tmp_path_factory.mktemp("bench") / "run"
    env = {**os.environ, "ARAG_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(_bench_cmd(out, 5), cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_text(encoding="utf-8").count("\n") >= 2:
            proc.kill()
            break
        time.sleep(0.2)
    proc.wait()
    killed_at = results.read_text(encoding="utf-8").count("\n")
    done = arag_here(*_bench_cmd(out, 5)[3:], "--data-dir", str(data_dir), default_lm=default_lm)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, killed_at, done.stdout


@pytest.mark.slow
def test_bench_end_to_end_resumes_without_duplicates(bench_run):
    from benchmarks.runner import read_results

    out, killed_at, stdout = bench_run
    assert 2 <= killed_at < 5
    ids = [r["id"] for r in read_results(out)]
    assert len(ids) == 5 and len(set(ids)) == 5
    for name in ("results.jsonl", "summary.csv", "summary.json", "REPORT.md", "accuracy_vs_retrieval.png", "signal_auc.png", "run.json"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [r["policy"] for r in summary["policies"]] == ["never", "token-confidence"]
    assert summary["questions"] == 5 and "token-confidence" in summary["sweeps"]
    never = summary["policies"][0]
    assert never["retrieval_rate"] == 0 and never["lm_calls_per_q"] == 1
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "| never |" in report and "accuracy_vs_retrieval.png" in report and "arag bench --dataset nq_open_oracle" in report
    assert "| token-confidence |" in stdout
    assert (out / "accuracy_vs_retrieval.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_calibrated_threshold_is_written_where_ask_reads_it(bench_run, tmp_path):
    from benchmarks.calibration import calibrate
    from benchmarks.runner import read_results
    from rag.config import load_config, write_trigger_settings
    from triggers.registry import build_trigger

    out, _, _ = bench_run
    result = calibrate(read_results(out), "token-confidence")
    cfg = tmp_path / "arag.toml"
    write_trigger_settings(cfg, "token-confidence", result["setting"])
    trig = build_trigger("token-confidence", per_trigger=load_config(str(cfg))["triggers"])
    assert trig.threshold == pytest.approx(result["setting"]["threshold"])


@pytest.mark.slow
def test_side_studies_run_on_the_default_model(default_lm, data_dir):
    from benchmarks.datasets import load_dataset
    from benchmarks.studies import STUDIES

    examples = load_dataset("nq_open_oracle", data_dir, limit=1)  # the mechanics; the studies' figures are their own runs
    own = STUDIES["own-text-entropy"][0](default_lm, examples)
    assert {"own answer", "reference answer", "own passage", "human passage"} <= set(own["texts"])
    assert all(v["entropy"] > 0 for v in own["texts"].values())
    reph = STUDIES["rephrase"][0](default_lm, examples)
    assert all(0.0 <= i["agreement"] <= 1.0 and 0.0 < i["confidence"] <= 1.0 for i in reph["items"])
    ranked = STUDIES["confidence-ranked"][0](default_lm, examples, samples=3)
    acc = ranked["accuracy"]
    assert acc["any sample (oracle)"] >= max(acc["first sample"], acc["highest confidence"], acc["majority vote"])
    for name, (_, md) in STUDIES.items():
        assert md({"own-text-entropy": own, "rephrase": reph, "confidence-ranked": ranked}[name]).startswith("## Side study")


def test_result_lines_may_contain_unicode_line_separators(tmp_path):
    """Model output can hold U+2028/U+0085; they are not line breaks in JSONL (str.splitlines() thinks so)."""
    import json

    from benchmarks.runner import read_results

    rows = [{"id": "a", "text": "one\u2028two\x85three"}, {"id": "b", "text": "ok"}]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert read_results(tmp_path) == rows
