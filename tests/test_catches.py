"""What each trigger catches: confidently-wrong closed-book answers flagged and the overlap of what
triggers flag, by hand and on the committed real run (no model)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.report import render_report, summarize

COMMITTED_RUN = Path("docs/benchmarks/nq_open_oracle-60")


def _record(i: int, min_prob: float, closed: str, rag: str, fires: set[str]) -> dict:
    cost = {"lm_calls": 1, "retriever_calls": 0, "prompt_tokens": 10, "generated_tokens": 5, "seconds": 1.0}
    free = {**cost, "lm_calls": 0}
    return {"id": str(i), "question": f"q{i}", "answers": ["Paris"], "wall_seconds": 3.0,
            "closed_book": {"text": closed, "tokens": 5, "costs": cost},
            "signals": {t: {"score": float(t in fires), "fired": t in fires, "costs": free}
                        for t in ("token-confidence", "question-length")},
            "extra_signals": {"token-confidence:min_prob": 1.0 - min_prob},
            "rag": {"query": "q", "passage_ids": ["d1"], "text": rag, "costs": {**cost, "retriever_calls": 1}}}


def test_confident_wrong_fractions_and_overlap_by_hand():
    # min-prob quantile 2/3 of these nine is 0.617: q0, q1, q2 are confident; q0 and q1 are wrong,
    # and retrieval fixes q0. A = token-confidence fires on q7, q8; B = question-length on q0, q1, q5, q8.
    probs = [0.95, 0.9, 0.85, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    right = {2, 4}
    a, b = "token-confidence", "question-length"
    fires = {0: {b}, 1: {b}, 5: {b}, 7: {a}, 8: {a, b}}
    recs = [_record(i, p, "Paris" if i in right else "Lyon", "Paris" if i == 0 else "Rome", fires.get(i, set()))
            for i, p in enumerate(probs)]
    cw = summarize(recs, ["never", "always", a, b])["catches"]["confident_wrong"]
    assert cw["min_prob_cut"] == pytest.approx(0.5 + (0.85 - 0.5) / 3)
    assert (cw["confident"], cw["questions"], cw["helps"]) == (3, 2, 1)
    ra, rb = cw["triggers"][a], cw["triggers"][b]
    assert (ra["flagged"], ra["fraction"], ra["fixes"]) == (0, 0.0, 0)
    assert (rb["flagged"], rb["fraction"], rb["fixes"]) == (2, 1.0, 1)
    # among all 7 wrong answers (all but q2, q4): A flags 2, B flags 4
    assert ra["fraction_of_wrong"] == pytest.approx(2 / 7) and rb["fraction_of_wrong"] == pytest.approx(4 / 7)
    assert ra["fires"] == pytest.approx(2 / 9) and rb["fires"] == pytest.approx(4 / 9)
    lo, hi = rb["fraction_of_wrong_ci"]
    assert lo < 4 / 7 < hi
    # Jaccard among confident-wrong: A flags none, so A–B = 0/2, A–A undefined; among all wrong: {8} / {0,1,5,7,8}
    assert cw["jaccard"][a][b] == 0.0 and cw["jaccard"][a][a] is None and cw["jaccard"][b][b] == 1.0
    assert cw["jaccard_wrong"][a][b] == pytest.approx(1 / 5) and cw["jaccard_wrong"][b][a] == pytest.approx(1 / 5)


def test_the_committed_run_reports_what_token_confidence_cannot_see(repo_root):
    """On the real 60-question run: the confident tercile is defined by the closed-book min-prob, and
    token confidence (fire when min-prob < θ) flags exactly the confident-wrong drafts below θ."""
    run = repo_root / COMMITTED_RUN
    records = [json.loads(line) for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    manifest = json.loads((run / "run.json").read_text(encoding="utf-8"))
    summary = summarize(records, ["never", "always", "token-confidence"], thresholds=manifest["thresholds"])
    cw = summary["catches"]["confident_wrong"]
    probs = [1.0 - r["extra_signals"]["token-confidence:min_prob"] for r in records]
    assert cw["confident"] == sum(p >= cw["min_prob_cut"] for p in probs) >= len(records) // 3
    theta = manifest["thresholds"]["token-confidence"]
    wrong = {r["id"] for r in records if r["id"] not in _right_closed(summary, records)}
    expected = sum(1 for r, p in zip(records, probs) if r["id"] in wrong and p >= cw["min_prob_cut"] and p < theta)
    tc = cw["triggers"]["token-confidence"]
    assert tc["flagged"] == expected and cw["questions"] > 0
    assert tc["fraction_ci"][0] <= tc["fraction"] <= tc["fraction_ci"][1]
    report = render_report(summary, manifest, run, [])
    assert "### Confidently wrong closed-book answers" in report and "| token-confidence |" in report
    # the committed report was rebuilt with this section
    assert "### Confidently wrong closed-book answers" in (run / "REPORT.md").read_text(encoding="utf-8")


def _right_closed(summary: dict, records: list[dict]) -> set[str]:
    from benchmarks.metrics import score_answer

    return {r["id"] for r in records if score_answer(r["closed_book"]["text"], r["answers"])[summary["metric"]] > 0}
