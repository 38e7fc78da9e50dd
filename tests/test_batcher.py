"""The server's micro-batcher on the real default model (issue 11, item 5), without HTTP: calls from
several threads become one `generate`, each caller gets its own rows and its own share of the usage,
a caller's callback runs on its own thread (so one that blocks holds up nobody), and `StopRow` from
one caller ends its row alone. The window is long and the batch size exact, so that which calls
merge does not depend on timing."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rag.apps.server.batcher import BatchedLM, MicroBatcher, split
from rag.models.lm import Prompt, StopRow

PROMPTS = [Prompt.user("Name three colours."), Prompt.user("What is the capital of Italy?"),
           Prompt.user("Describe a cat in one sentence.")]
LONG_WAIT = 10_000.0  # ms: a batch goes out when it is full, never because the window ended


def run_together(batcher: MicroBatcher, calls: list) -> list:
    """Each ``(prompts, kwargs)`` through its own `BatchedLM` on its own thread; returns (generations, usage)."""
    def one(call):
        view = BatchedLM(batcher)
        prompts, kw = call
        return view.generate(prompts, **kw), view.usage

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


@pytest.mark.slow
def test_calls_from_several_threads_are_one_batch_with_the_sequential_answers(default_lm):
    batcher = MicroBatcher(default_lm, window_ms=LONG_WAIT, max_batch=3)
    before = default_lm.usage.snapshot()
    got = run_together(batcher, [([p], {"max_new_tokens": 12}) for p in PROMPTS])
    merged = default_lm.usage.since(before)
    assert batcher.batch_sizes == {3: 1}
    for p, (gens, usage) in zip(PROMPTS, got):
        alone = default_lm.generate([p], max_new_tokens=12)[0][0]
        assert gens[0][0].token_ids == alone.token_ids and gens[0][0].text == alone.text
        assert usage.prompt_tokens == alone.prompt_tokens and usage.calls == 1  # its own costs, not the batch's
    assert sum(u.generated_tokens for _, u in got) == merged.generated_tokens  # the shares add up


@pytest.mark.slow
def test_calls_with_different_options_are_not_merged(default_lm):
    batcher = MicroBatcher(default_lm, window_ms=300, max_batch=4)
    got = run_together(batcher, [([PROMPTS[0]], {"max_new_tokens": 4}), ([PROMPTS[1]], {"max_new_tokens": 5})])
    assert batcher.batch_sizes == {1: 2}
    assert [len(g[0][0].token_ids) <= b for (g, _), b in zip(got, (4, 5))] == [True, True]


@pytest.mark.slow
def test_a_blocking_callback_holds_up_no_other_caller(default_lm):
    """A streams through a callback that blocks until B has its answer: were callbacks run on the
    batch's thread, B would wait for ever (here: until the generous timeout fails the test)."""
    batcher = MicroBatcher(default_lm, window_ms=LONG_WAIT, max_batch=2)
    release, seen = threading.Event(), []

    def stuck(row: int, text: str) -> None:
        seen.append(text)
        release.wait(600)

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(BatchedLM(batcher).generate, [PROMPTS[0]], max_new_tokens=12, on_text=stuck)
        b = pool.submit(BatchedLM(batcher).generate, [PROMPTS[1]], max_new_tokens=12)
        try:
            b_text = b.result(timeout=600)[0][0].text
            assert not a.done() and len(seen) == 1  # A is still in its first callback
        finally:
            release.set()
        a_gen = a.result(timeout=600)[0][0]
    assert batcher.batch_sizes == {2: 1}
    assert b_text == default_lm.generate([PROMPTS[1]], max_new_tokens=12)[0][0].text
    assert a_gen.text == default_lm.generate([PROMPTS[0]], max_new_tokens=12)[0][0].text


@pytest.mark.slow
def test_stop_row_from_one_caller_ends_its_row_alone_where_it_stopped(default_lm):
    batcher = MicroBatcher(default_lm, window_ms=LONG_WAIT, max_batch=2)
    stopped_at: list[str] = []

    def enough(row: int, text: str) -> None:
        if len(text) >= 12:
            stopped_at.append(text)
            raise StopRow()

    got = run_together(batcher, [([PROMPTS[2]], {"max_new_tokens": 30, "on_text": enough}),
                                 ([PROMPTS[1]], {"max_new_tokens": 30})])
    cut, other = got[0][0][0][0], got[1][0][0][0]
    assert cut.stop == "cancelled" and cut.text == stopped_at[0] and len(stopped_at) == 1
    assert other.stop != "cancelled"
    assert other.text == default_lm.generate([PROMPTS[1]], max_new_tokens=30)[0][0].text


@pytest.mark.parametrize("total, weights", [(10, [1, 1, 1]), (7, [0, 0]), (100, [3, 5, 0, 9]), (0, [2, 2])])
def test_usage_split_adds_up_and_follows_the_weights(total, weights):
    parts = split(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)
    assert all(abs(p - total * w / (sum(weights) or 1)) < 1 for p, w in zip(parts, weights) if sum(weights))
