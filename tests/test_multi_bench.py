"""`arag bench --dataset a,b`: each set in its own resumable sub-folder, one gain table and a heatmap
(a tiny random model's folder, in this process: this tests the machinery, not the model)."""
from __future__ import annotations

import json
import subprocess
from unittest import mock

import pytest

from benchmarks.multi import gain_table, render
from conftest import arag_here

SETS = ("flashrag_toy", "nq_open_oracle")
POLICIES = "never,always,token-confidence,question-length"


def _bench(out, limit: int, model, data_dir, *extra: str) -> subprocess.CompletedProcess:
    return arag_here("bench", "--dataset", ",".join(SETS), "--limit", str(limit), "--policies", POLICIES, "--model", str(model),
                     "--out", str(out), "--data-dir", str(data_dir), "--no-progress", *extra)


@pytest.mark.slow
def test_two_sets_run_into_sub_folders_resume_and_share_one_table(tiny_model_dir, tmp_path, data_dir):
    out = tmp_path / "multi"
    first = _bench(out, 2, tiny_model_dir, data_dir)
    assert first.returncode == 0, first.stderr[-2000:]
    second = _bench(out, 3, tiny_model_dir, data_dir)  # resumes: one more question per set, nothing recomputed
    assert second.returncode == 0, second.stderr[-2000:]
    for name in SETS:
        ids = [json.loads(line)["id"] for line in (out / name / "results.jsonl").read_text(encoding="utf-8").splitlines()]
        assert len(ids) == 3 == len(set(ids))
        assert json.loads((out / name / "run.json").read_text(encoding="utf-8"))["config"]["dataset"] == name
        assert (out / name / "REPORT.md").exists()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["datasets"] == list(SETS) and summary["triggers"] == ["token-confidence", "question-length"]
    for name in SETS:
        s = json.loads((out / name / "summary.json").read_text(encoding="utf-8"))
        row = {r["policy"]: r for r in s["policies"]}["question-length"]
        cell = summary["sets"][name]
        assert cell["questions"] == 3 and cell["never"] == s["references"]["never"]
        note = {"gain_note": row["gain_note"]} if row.get("gain_note") else {}  # 3 questions: too few events
        assert cell["gain"]["question-length"] == {"gain": row["gain"], "gain_ci": row.get("gain_ci"), **note}
    assert (out / "gain_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "| token-confidence (gain) | question-length (gain) |" in report and "| nq_open_oracle | 3 |" in report and "gain_heatmap.png" in report and "--dataset flashrag_toy,nq_open_oracle" in report
    assert "| never (accuracy) |" in second.stdout and "| flashrag_toy | 3 |" in second.stdout
    # the report alone: no model is loaded
    (out / "summary.json").unlink()
    with mock.patch("rag.pipeline.load_language_model", side_effect=AssertionError("--report-only loaded a model")):
        again = _bench(out, 3, tiny_model_dir, data_dir, "--report-only")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["sets"] == summary["sets"]


def test_a_bad_set_among_several_stops_before_anything_runs(tmp_path, data_dir):
    out = tmp_path / "multi"
    for datasets, message in (("flashrag_toy,nope", "unknown dataset 'nope'"), ("flashrag_toy,flashrag_toy", "listed twice")):
        done = arag_here("bench", "--dataset", datasets, "--out", str(out), "--data-dir", str(data_dir))
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (out / "flashrag_toy").exists()
    done = arag_here("bench", "--dataset", "flashrag_toy,nq_open", "--split", "dev", "--data-dir", str(data_dir))
    assert done.returncode == 2 and "--split applies to one dataset" in done.stderr


def test_gain_table_by_hand():
    def summary(gain, ci, signals):
        return {"metric": "contains", "questions": 10,
                "references": {"never": 0.1, "never_ci": [0.0, 0.3], "always": 0.3, "always_ci": [0.1, 0.5], "retrieval_helps": 2},
                "policies": [{"policy": "never"}, {"policy": "always"}, {"policy": "msp", "gain": gain, "gain_ci": ci}],
                "signals": signals}

    table = gain_table({"a": summary(0.2, [-0.1, 0.5], [{"signal": "msp", "gain": 0.2, "gain_ci": [-0.1, 0.5]},
                                                       {"signal": "x", "gain": 0.4, "gain_ci": [0.1, 0.6]}]),
                        "b": summary(None, None, [{"signal": "msp", "gain": None, "gain_ci": None}])})
    assert table["triggers"] == ["msp"]
    assert table["sets"]["a"]["best_signal"] == {"signal": "x", "gain": 0.4, "gain_ci": [0.1, 0.6]}
    assert table["sets"]["b"]["best_signal"] is None
    text = render(table, "arag bench --dataset a,b", None)
    assert "| msp (gain) | best signal (gain) |" in text
    assert "| a | 10 | 2 | 10.0 % [0.0, 30.0] | 30.0 % [10.0, 50.0] | +0.200 [-0.100, +0.500] | x +0.400 [+0.100, +0.600] |" in text
    assert text.rstrip().endswith("| b | 10 | 2 | 10.0 % [0.0, 30.0] | 30.0 % [10.0, 50.0] | – | – |")
