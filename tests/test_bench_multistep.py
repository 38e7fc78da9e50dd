"""Multi-step benchmarks (issue 15): `arag bench --max-steps 3` runs every policy for real through the
loop and its report says how many steps the answers took and where each trigger fired."""
from __future__ import annotations

import json
import math

import pytest

from conftest import arag_here

POLICIES = ("never", "always", "token-confidence", "quco")
LIMIT = 1  # questions in the end-to-end run (the 1st already answers in three steps)


def _policy(steps: list[tuple[object, bool]], stop: str = "end of answer") -> dict:
    cost = {"lm_calls": len(steps), "retriever_calls": 0, "prompt_tokens": 10, "generated_tokens": 5, "seconds": 1.0}
    return {"text": "Paris", "retrieved": any(f for _, f in steps), "costs": cost, "first_step": None, "pre_fired": False,
            "steps": [{"score": s, "fired": f} for s, f in steps], "stop_reason": stop}


def test_step_rows_count_later_firings_and_non_finite_scores():
    from benchmarks.multistep import step_rows, step_table

    recs = [{"id": "a", "live": {"tc": _policy([(0.2, False), ("inf", True), (0.5, False)], "step budget")}},
            {"id": "b", "live": {"tc": _policy([(0.9, True)])}},
            {"id": "c", "live": {"tc": _policy([("-inf", False), (0.1, True)], "repetition")}}]
    (row,) = step_rows(recs, ["tc"])
    assert row["steps_per_answer"] == 2 and row["multi_step_answers"] == 2 and row["fired_first_step"] == 1
    assert (row["fired_later_answers"], row["fired_later_steps"], row["later_steps"]) == (2, 2, 3)
    assert row["non_finite_scores"] == 2
    assert row["stop_reasons"] == {"step budget": 1, "end of answer": 1, "repetition": 1}
    assert "| tc | 2.00 | 2 / 3 | 1 | 2 | 2 / 3 | 0 | 2 |" in step_table([row], 3)
    # single-step records, and live records written before the runner kept the steps, have no step table
    assert step_rows([{"id": "a", "closed_book": {}}], ["tc"]) is None
    assert step_rows([{"id": "a", "live": {"tc": {"text": ""}}}], ["tc"]) is None


@pytest.mark.slow
def test_multi_step_bench_on_hotpotqa_writes_results_summary_and_report(data_dir, default_lm, tmp_path):
    """The documented command (QuCo on its default demo index), three steps at most, every policy run for
    real, on the first HotpotQA question: with the default model `always` answers the 1st in three steps
    (docs/benchmarks/hotpotqa_dev_distractor_500-ms3-60), so mid-answer retrieval shows. In this process,
    on the session's model: the command's code is under test, not the process around it."""
    from benchmarks.runner import read_results
    from corpora.jsonfloat import read_float

    out = tmp_path / "run"
    done = arag_here("bench", "--dataset", "hotpotqa_dev_distractor_500", "--limit", str(LIMIT), "--max-steps", "3",
                     "--policies", ",".join(POLICIES), "--out", str(out), "--data-dir", str(data_dir), "--no-progress",
                     default_lm=default_lm)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("results.jsonl", "summary.csv", "summary.json", "REPORT.md", "run.json"):
        assert (out / name).stat().st_size > 0, name

    records = read_results(out, check=True)
    assert len(records) == LIMIT and all(set(r["live"]) == set(POLICIES) for r in records)
    steps = {p: [r["live"][p]["steps"] for r in records] for p in POLICIES}
    assert all(1 <= len(s) <= 3 for per in steps.values() for s in per)
    assert any(len(s) > 1 for per in steps.values() for s in per), "no answer took more than one step"
    scores = [read_float(x["score"]) for per in steps.values() for s in per for x in s if x["score"] is not None]
    assert scores and not any(math.isnan(x) for x in scores)  # finite or ±inf, each read back from the file

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = {r["policy"]: r for r in summary["policies"]}
    assert rows["never"]["retrieval_rate"] == 0 and rows["never"]["retriever_calls_per_q"] == 0
    assert rows["always"]["retrieval_rate"] == 1 and rows["always"]["random_at_rate"] == rows["always"]["accuracy"]
    per_step = {r["policy"]: r for r in summary["steps"]}
    assert per_step["never"]["fired_first_step"] == per_step["never"]["fired_later_steps"] == 0
    # `always` fires on every step, the later ones included: the loop retrieves mid-answer
    assert per_step["always"]["fired_later_steps"] == per_step["always"]["later_steps"] > 0
    assert sum(r["multi_step_answers"] for r in per_step.values()) > 0

    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "max_steps=3" in report and "## Steps (multi-step answers)" in report
    assert all(f"| {p} |" in report for p in POLICIES)
    assert "| quco |" in done.stdout


COMMITTED_RUN = "docs/benchmarks/hotpotqa_dev_distractor_500-ms3-60"  # the multi-step benchmark of docs/benchmarks.md


def test_report_only_rebuilds_the_committed_multi_step_run(tmp_path, repo_root, data_dir, monkeypatch):
    """The docs' multi-step table (docs/benchmarks.md) is what `--report-only` derives from the committed results, Steps table included."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(repo_root / COMMITTED_RUN, out)
    committed = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    (out / "summary.json").unlink()
    (out / "REPORT.md").unlink()
    cfg = json.loads((out / "run.json").read_text(encoding="utf-8"))["config"]
    monkeypatch.chdir(repo_root)  # the run's corpus index is named relative to the repository
    done = arag_here("bench", "--report-only", "--dataset", cfg["dataset"], "--limit", "60", "--max-steps",
                     str(cfg["max_steps"]), "--policies", ",".join(cfg["policies"]), "--corpus-index",
                     cfg["trigger_options"]["corpus_index"], "--out", str(out), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert s["steps"] == committed["steps"]
    assert [(r["policy"], r["accuracy"], r["retrieval_rate"]) for r in s["policies"]] == \
        [(r["policy"], r["accuracy"], r["retrieval_rate"]) for r in committed["policies"]]
    steps = {r["policy"]: r for r in s["steps"]}
    assert steps["always"]["multi_step_answers"] > 0 and steps["token-confidence"]["fired_later_answers"] > 0
    assert "## Steps (multi-step answers)" in (out / "REPORT.md").read_text(encoding="utf-8")
