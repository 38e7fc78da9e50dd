"""benchmarks/perf_batch.py runs end to end (a smoke test on the tiny hub model and 4 questions; the
real measurement is the 64-question run its docstring names, on an idle machine)."""
from __future__ import annotations

import json

import pytest

from conftest import TINY_HUB_ID


@pytest.mark.slow
def test_perf_batch_smoke(tiny_hub_env, data_dir, tmp_path, monkeypatch, capsys):
    """Its main in this process (it only orchestrates); each configuration in its own process, as measured."""
    from benchmarks.perf_batch import main

    out = tmp_path / "perf.json"
    monkeypatch.setenv("ARAG_DATA_DIR", str(data_dir))  # the children inherit this process's environment
    main(["--limit", "2", "--batch-sizes", "1,2", "--model", TINY_HUB_ID, "--out", str(out)])
    assert "× sequential" in capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert figures["questions"] == 2 and [b["batch"] for b in figures["batches"]] == [1, 2]
    for b in figures["batches"]:
        assert b["questions_per_s"] > 0 and b["vs_sequential"] > 0
        assert b["ceiling_prompts_per_s"] > 0 and b["peak_rss_mib"] > 0
        assert 0 <= b["same_answer"] <= 1 and 0 <= b["same_decisions"] <= b["same_answer"]
    assert figures["batches"][0]["ceiling_vs_batch_1"] == 1.0
    assert figures["batches"][0]["same_decisions"] == 1.0  # batch 1 decodes exactly as `answer` does


def test_perf_batch_rejects_bad_batch_sizes(capsys):
    from benchmarks.perf_batch import main

    assert main(["--batch-sizes", "4,x"]) == 2
    err = capsys.readouterr().err
    assert "--batch-sizes must be comma-separated integers" in err and err.count("\n") == 1


def test_perf_bench_batch_compares_the_figures_batching_must_not_change():
    """`benchmarks.perf_bench_batch.differences`: equal summaries pass; a moved accuracy or a signal's
    gain is named; seconds (shared between a batch's rows) are not compared."""
    from benchmarks.perf_bench_batch import differences

    a = {"policies": [{"policy": "never", "contains": 0.1, "retrieval_rate": 0.0, "seconds_per_q": 1.0}],
         "signals": [{"signal": "msp", "roc_auc": 0.6, "gain": float("nan")}]}
    b = {"policies": [{"policy": "never", "contains": 0.1 + 1e-9, "retrieval_rate": 0.0, "seconds_per_q": 9.0}],
         "signals": [{"signal": "msp", "roc_auc": 0.6, "gain": float("nan")}]}
    assert differences(a, b, 1e-6) == []
    b["policies"][0]["contains"] = 0.2
    b["signals"][0]["gain"] = 0.3
    assert sorted(differences(a, b, 1e-6)) == ["never.contains: 0.1 vs 0.2", "signal msp.gain: nan vs 0.3"]
