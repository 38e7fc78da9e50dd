"""`arag serve` with micro-batching (issue 11, item 5) over real HTTP on 127.0.0.1 with the real
default model: concurrent requests (threads with the official openai client) get the answers they
get one at a time and really share batches; a streaming client that disconnects, or reads slowly,
does not stop or hold up the request batched with it. Each server here has a long window and an
exact batch size, so which requests merge does not depend on timing."""
from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from rag.apps.server import ServerThread, create_app
from rag.loop import LoopConfig
from rag.models.lm import Prompt
from rag.pipeline import Pipeline
from retrievers import build_retriever
from triggers import TokenConfidence

QUESTIONS = ["who wrote the novel 1984", "what is the capital of France", "how many countries are in OPEC"]
COUNT = "Count from 1 to 1000, separated by commas."
SO_FAR = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # greedy counting from here does not end within 150 tokens
RAW = {"arag": {"retrieval": False}}


@pytest.fixture(scope="module")
def bm25(demo_docs):
    return build_retriever("bm25", demo_docs, progress=False)


@contextlib.contextmanager
def serving(default_lm, bm25, window_ms: float, max_batch: int):
    pipe = Pipeline(lm=default_lm, retriever=bm25, trigger=TokenConfidence(),
                    config=LoopConfig(max_steps=2, step_tokens=16))
    app = create_app(pipe, batch_window_ms=window_ms, max_batch=max_batch)
    with ServerThread(app) as srv:
        yield srv, app.state.service.batcher


def client(srv) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=600)


def counting(stream: bool, max_tokens: int) -> dict:
    return {"model": "default", "stream": stream, "max_tokens": max_tokens, "continue_final_message": True,
            "messages": [{"role": "user", "content": COUNT}, {"role": "assistant", "content": SO_FAR}], **RAW}


def counted(default_lm, max_tokens: int) -> str:
    """What the model writes for `counting`, straight from the model."""
    return default_lm.generate([Prompt((("user", COUNT),), prefix=SO_FAR)], max_new_tokens=max_tokens)[0][0].text


def pieces(response: httpx.Response):
    """The text pieces of an SSE chat stream, one by one."""
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:])["choices"]:
                if choice["delta"].get("content"):
                    yield choice["delta"]["content"]


@pytest.mark.slow
def test_concurrent_adaptive_requests_share_batches_and_answer_as_sequential_ones(default_lm, bm25):
    with serving(default_lm, bm25, window_ms=1000, max_batch=3) as (srv, batcher):
        c = client(srv)

        def ask(q: str):
            r = c.chat.completions.create(model="default", messages=[{"role": "user", "content": q}], max_tokens=24)
            trace = r.model_extra["arag"]
            return r.choices[0].message.content, [s["fired"] for s in trace["steps"]], trace["costs"]

        alone = [ask(q) for q in QUESTIONS]
        assert set(batcher.batch_sizes) == {1}
        batcher.batch_sizes.clear()
        with ThreadPoolExecutor(len(QUESTIONS)) as pool:
            together = list(pool.map(ask, QUESTIONS))
    assert batcher.batch_sizes[3] >= 1  # the first drafts of all three were one generate call
    for (text, fired, costs), (text2, fired2, costs2) in zip(alone, together):
        assert text2 == text and fired2 == fired
        # each request's costs are its own share of the batches, equal to what it costs alone
        assert (costs2["lm_calls"], costs2["prompt_tokens"]) == (costs["lm_calls"], costs["prompt_tokens"])


@pytest.mark.slow
def test_a_streaming_client_that_disconnects_does_not_stop_the_request_batched_with_it(default_lm, bm25):
    with serving(default_lm, bm25, window_ms=60_000, max_batch=2) as (srv, batcher):
        url = srv.base_url + "/chat/completions"

        def leaves() -> list[str]:
            with httpx.stream("POST", url, json=counting(True, 60), timeout=600) as r:
                got = []
                for piece in pieces(r):
                    got.append(piece)
                    if len(got) == 2:
                        return got  # closes the connection mid-stream

        def stays() -> str:
            with httpx.stream("POST", url, json=counting(True, 60), timeout=600) as r:
                return "".join(pieces(r))

        before = default_lm.usage.snapshot()
        with ThreadPoolExecutor(2) as pool:
            left, stayed = pool.submit(leaves), pool.submit(stays)
            assert len(left.result(timeout=900)) == 2
            text = stayed.result(timeout=900)
        used = default_lm.usage.since(before)
    assert batcher.batch_sizes == {2: 1}
    assert text == counted(default_lm, 60)
    assert used.generated_tokens < 120  # the departed client's row ended early; the other ran its 60


@pytest.mark.slow
def test_a_slow_reading_stream_does_not_hold_up_a_request_in_its_batch(default_lm, bm25):
    """The streaming client reads nothing until the other request of its batch has its whole answer."""
    with serving(default_lm, bm25, window_ms=60_000, max_batch=2) as (srv, batcher):
        opened, resume, streamed = threading.Event(), threading.Event(), []

        def slow_reader() -> None:
            with httpx.stream("POST", srv.base_url + "/chat/completions", json=counting(True, 40), timeout=600) as r:
                opened.set()  # the response has begun; its generate call waits in the batcher for a partner
                resume.wait(600)
                streamed.append("".join(pieces(r)))

        reader = threading.Thread(target=slow_reader)
        reader.start()
        try:
            assert opened.wait(600)
            body = counting(False, 40)
            r = client(srv).chat.completions.create(model="default", messages=body["messages"], max_tokens=40,
                                                    extra_body={**RAW, "continue_final_message": True})
            assert not streamed  # the other request finished while the stream had not been read at all
        finally:
            resume.set()
            reader.join(600)
    expected = counted(default_lm, 40)
    assert r.choices[0].message.content == expected and streamed == [expected]
    assert batcher.batch_sizes == {2: 1}


@pytest.mark.parametrize("flag, value, needle", [("--batch-window-ms", "-1", "must be >= 0"),
                                                 ("--batch-window-ms", "nan", "finite"),
                                                 ("--max-batch", "0", "positive integer")])
def test_batching_flags_are_checked_before_anything_loads(capsys, flag, value, needle):
    from rag.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and needle in err, err
