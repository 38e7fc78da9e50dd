"""The OpenAI-compatible backend under load (issue 11, item 2), against a real HTTP server on
127.0.0.1 that the test starts: a small FastAPI app that answers each chat request with its own
prompt after a delay, counts the requests it has in flight, and can refuse the first ones with
429/503. Concurrency, order, usage, retries and timeouts are the client's; the replies are this
app's, so the assertions are exact."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from rag.apps.server import ServerThread
from rag.cli import main
from rag.models.lm import ModelError
from rag.models.openai_backend import OpenAICompatibleModel


@dataclass
class Echo:
    """What the app saw, and what it is told to do."""

    delay: float = 0.3
    refuse: list[int] = field(default_factory=list)  # statuses for the first requests, in order
    requests: int = 0
    in_flight: int = 0
    most_in_flight: int = 0


def echo_app(state: Echo) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "echo", "object": "model", "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        state.requests += 1
        if state.refuse:
            status = state.refuse.pop(0)
            return JSONResponse({"error": {"message": f"try again ({status})", "type": "overloaded"}},
                                status_code=status, headers={"retry-after-ms": "10"})
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.delay)
        finally:
            state.in_flight -= 1
        text = body["messages"][-1]["content"]
        token = {"token": text, "logprob": -0.5, "top_logprobs": [{"token": text, "logprob": -0.5}]}
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length",
                             "logprobs": {"content": [token]}}],
                "usage": {"prompt_tokens": len(text), "completion_tokens": 1}}

    return app


@pytest.fixture
def echo():
    state = Echo()
    with ServerThread(echo_app(state)) as srv:
        yield state, srv.base_url


def test_a_batch_goes_out_as_concurrent_requests_and_comes_back_in_order(echo):
    state, url = echo
    lm = OpenAICompatibleModel(url, "echo", concurrency=4)
    prompts = [f"prompt number {i}" + "!" * i for i in range(10)]
    gens = lm.generate(prompts, max_new_tokens=1)
    assert [g[0].text for g in gens] == prompts  # the order of the prompts, not of the replies
    assert 1 < state.most_in_flight <= 4  # they overlapped, and never more than `concurrency` at once
    assert lm.usage.calls == 10 and lm.usage.generated_tokens == 10
    assert lm.usage.prompt_tokens == sum(len(p) for p in prompts)  # no update lost between threads


def test_concurrency_one_sends_one_request_at_a_time(echo):
    state, url = echo
    state.delay = 0.05
    lm = OpenAICompatibleModel(url, "echo", concurrency=1)
    assert [g[0].text for g in lm.generate(["a", "b", "c"])] == ["a", "b", "c"]
    assert state.most_in_flight == 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_refused_request_is_retried_by_the_client(echo, status):
    state, url = echo
    state.delay, state.refuse = 0.0, [status]
    lm = OpenAICompatibleModel(url, "echo", max_retries=2)
    assert lm.generate(["hello"])[0][0].text == "hello"
    assert state.requests == 2 and lm.usage.calls == 1  # one retry on the wire, one call in the accounts


def test_refusals_past_the_retries_are_one_model_error_with_the_server_message(echo):
    state, url = echo
    state.delay, state.refuse = 0.0, [503, 503, 503]
    lm = OpenAICompatibleModel(url, "echo", max_retries=1)
    with pytest.raises(ModelError, match=r"/chat/completions: HTTP 503: try again \(503\)"):
        lm.generate(["hello"])
    assert state.requests == 2


def test_a_server_that_does_not_answer_in_time_is_a_clear_model_error(echo):
    state, url = echo
    state.delay = 5.0
    lm = OpenAICompatibleModel(url, "echo", timeout=0.5, max_retries=0, concurrency=2)
    with pytest.raises(ModelError, match=r"/chat/completions: no reply within 0.5 s \(1 attempt\)"):
        lm.generate(["slow", "slower"])


def test_concurrency_flag_is_refused_for_an_in_process_model(capsys):
    assert main(["ask", "q?", "--concurrency", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--concurrency applies to an openai:" in err
