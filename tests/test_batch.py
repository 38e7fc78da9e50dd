"""Many questions at once (rag/loop/batch.py): batched answers equal one-by-one answers, costs add up."""
from __future__ import annotations

import math

import pytest

from rag.errors import UsageError
from rag.loop import AdaptiveRAG, LoopConfig
from rag.loop.batch import _apportion, split_call
from rag.models.lm import Generation, Usage
from retrievers import build_retriever
from triggers import Always, TokenConfidence

QUESTIONS = [
    "how many countries are a part of opec",
    "who got the first nobel prize in physics",
    "Write a long paragraph about the city of Paris, its history and its monuments.",  # several steps
    "what is the capital of france",
]


def trace_of(a) -> dict:
    """Everything an answer decided, less seconds (and the LM costs, compared separately)."""
    d = a.to_dict()
    d["costs"] = {k: d["costs"][k] for k in ("lm_calls", "retriever_calls")}
    return d


def assert_same(x, y, where: str = "") -> None:
    """Equal, floats up to the last bits a padded batch may move (texts, tokens, ids and flags exactly)."""
    if isinstance(x, float) and isinstance(y, float):
        assert math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-5) or x == y, f"{where}: {x} != {y}"
    elif isinstance(x, dict) and isinstance(y, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            assert_same(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list) and isinstance(y, list):
        assert len(x) == len(y), f"{where}: {len(x)} != {len(y)} items"
        for i, (a, b) in enumerate(zip(x, y)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert x == y, f"{where}: {x!r} != {y!r}"


@pytest.fixture(scope="module")
def demo_bm25(demo_docs):
    return build_retriever("bm25", demo_docs, progress=False)


@pytest.mark.slow
def test_answer_many_equals_answer_on_the_default_model(default_lm, demo_bm25):
    rag = AdaptiveRAG(default_lm, demo_bm25, TokenConfidence(), config=LoopConfig(max_steps=2))
    alone = [rag.answer(q) for q in QUESTIONS]
    before = default_lm.usage.snapshot()
    together = rag.answer_many(QUESTIONS, batch_size=3)  # 4 questions through 3 slots: one joins mid-way
    used = default_lm.usage.since(before)
    assert_same([trace_of(a) for a in together], [trace_of(a) for a in alone])
    # the test is only worth something if it covers both decisions and a multi-step answer
    assert any(s.fired for a in alone for s in a.steps) and any(not s.fired for a in alone for s in a.steps)
    assert max(len(a.steps) for a in alone) > 1
    assert {a.stop_reason for a in together} == {a.stop_reason for a in alone}
    # the batched calls' tokens are split so that the answers' costs add up to what the model counted
    assert sum(a.costs.prompt_tokens for a in together) == used.prompt_tokens
    assert sum(a.costs.generated_tokens for a in together) == used.generated_tokens
    assert [a.costs.prompt_tokens for a in together] == [a.costs.prompt_tokens for a in alone]


def test_budgets_and_retrieval_cap_batched_on_a_tiny_model(tiny_lm, demo_bm25):
    """An answer token budget, a retrieval budget spent on the first step, questions joining as others
    finish: the same answers as one by one, at every batch size."""
    cfg = LoopConfig(max_steps=4, step_tokens=6, max_retrievals=1, answer_tokens=14, sentence_steps=False)
    rag = AdaptiveRAG(tiny_lm, demo_bm25, Always(), config=cfg)
    qs = QUESTIONS[:4]
    alone = [trace_of(rag.answer(q)) for q in qs]
    for size in (1, 2, 4, 9):
        assert_same([trace_of(a) for a in rag.answer_many(qs, batch_size=size)], alone, f"batch {size}")
    assert {a["stop_reason"] for a in alone} == {"token budget"}


def test_retrieval_queries_and_progress(tiny_lm, demo_bm25):
    rag = AdaptiveRAG(tiny_lm, demo_bm25, Always(), config=LoopConfig(max_steps=1, step_tokens=3, sentence_steps=False))
    seen = []
    many = rag.answer_many(QUESTIONS[:2], batch_size=2, retrieval_queries=["OPEC members", None],
                           progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert [s.query for s in many[0].steps] == [s.query for s in rag.answer(QUESTIONS[0], retrieval_query="OPEC members").steps]
    assert many[1].steps[0].query.startswith(QUESTIONS[1])


def test_bad_batch_arguments_are_usage_errors(tiny_lm, demo_bm25):
    rag = AdaptiveRAG(tiny_lm, demo_bm25, Always())
    with pytest.raises(UsageError, match="batch_size"):
        rag.answer_many(QUESTIONS, batch_size=0)
    with pytest.raises(UsageError, match="retrieval_queries"):
        rag.answer_many(QUESTIONS, retrieval_queries=["x"])
    with pytest.raises(UsageError, match="empty"):
        rag.answer_many(["ok", "  "])
    assert rag.answer_many([]) == []


def test_a_batched_call_is_split_so_that_shares_add_up():
    assert _apportion(10, [1, 1, 1]) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert sum(_apportion(7, [0, 0])) == 7
    rows = [Generation("a", token_ids=[1, 2, 3], prompt_tokens=30), Generation("b", token_ids=[4], prompt_tokens=10)]
    shares = split_call(rows, Usage(calls=2, prompt_tokens=40, generated_tokens=7), seconds=3.0)
    assert [(s.lm_calls, s.prompt_tokens, s.generated_tokens) for s in shares] == [(1, 30, 5), (1, 10, 2)]
    assert sum(s.seconds for s in shares) == pytest.approx(3.0)


def _without_timing(x):
    """A record less what batching may change: seconds, and how a batched call's generated tokens are shared."""
    if isinstance(x, dict):
        return {k: _without_timing(v) for k, v in x.items() if k not in ("seconds", "wall_seconds", "generated_tokens")}
    if isinstance(x, list):
        return [_without_timing(v) for v in x]
    return x


@pytest.mark.slow
def test_bench_runner_batched_equals_question_by_question(default_lm, demo_bm25):
    """Single-step records (closed-book, signals, RAG answer) with the drafts and searches warmed for a batch."""
    from benchmarks.datasets import QAExample
    from benchmarks.runner import QuestionRunner

    examples = [QAExample(str(i), q, ("x",)) for i, q in enumerate(QUESTIONS[:4])]
    runner = QuestionRunner(default_lm, demo_bm25, {"token-confidence": TokenConfidence()}, LoopConfig(max_steps=1))
    alone = [runner.run(ex) for ex in examples]
    batched = runner.run_many(examples)
    assert_same([_without_timing(r) for r in batched], [_without_timing(r) for r in alone])
    assert all(r["rag"]["passage_ids"] for r in batched)  # the RAG branch was computed in the batch


def test_bench_runner_batched_multi_step_equals_one_by_one(tiny_lm, demo_bm25):
    from benchmarks.datasets import QAExample
    from benchmarks.runner import QuestionRunner

    examples = [QAExample(str(i), q, ("x",)) for i, q in enumerate(QUESTIONS[:3])]
    cfg = LoopConfig(max_steps=2, step_tokens=4, sentence_steps=False)
    runner = QuestionRunner(tiny_lm, demo_bm25, {"token-confidence": TokenConfidence()}, cfg)
    alone = [runner.run(ex) for ex in examples]
    assert_same([_without_timing(r) for r in runner.run_many(examples)], [_without_timing(r) for r in alone])


def test_run_questions_writes_a_batched_run_once_per_question(tiny_lm, demo_bm25, tmp_path):
    from benchmarks.datasets import QAExample
    from benchmarks.run_loop import run_questions
    from benchmarks.runner import QuestionRunner, read_results

    examples = [QAExample(str(i), q, ("x",)) for i, q in enumerate(QUESTIONS)]
    runner = QuestionRunner(tiny_lm, demo_bm25, {"token-confidence": TokenConfidence()},
                            LoopConfig(max_steps=1, step_tokens=4, sentence_steps=False))
    done = {"1"}  # already in the run folder: skipped
    assert run_questions(runner, examples, tmp_path, done, progress=False, batch_size=2) == 3
    assert [r["id"] for r in read_results(tmp_path)] == ["0", "2", "3"] and done == {"0", "1", "2", "3"}
