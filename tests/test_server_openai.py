"""The server as OpenAI and vLLM clients expect it (issue 14, part 2), each over real HTTP on 127.0.0.1
with the official openai client: `/v1/completions`, `GET /v1/models/{id}`, the adaptive mode honouring
max_tokens / stop / temperature / seed, usage of the returned text, cancelled work for a client that
gave up, and the requests that must be refused with a 4xx naming the field."""
from __future__ import annotations

import time

import httpx
import openai
import pytest

from rag.apps.server import Limits, ServerThread, create_app
from rag.loop import LoopConfig
from rag.models.lm import Prompt
from rag.pipeline import Pipeline
from retrievers import build_retriever
from triggers import TokenConfidence

pytestmark = pytest.mark.slow  # every test here runs the real default model

KEY = "test-key"
QUESTION = "who wrote the novel 1984"
CONFIG = LoopConfig(max_steps=2, step_tokens=24)
COUNTING = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."},
            {"role": "assistant", "content": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"}]


@pytest.fixture(scope="module")
def server(default_lm, demo_docs):
    bm25 = build_retriever("bm25", demo_docs, progress=False)
    pipe = Pipeline(lm=default_lm, retriever=bm25, trigger=TokenConfidence(), config=CONFIG)
    with ServerThread(create_app(pipe, api_key=KEY, limits=Limits(max_tokens=2048))) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=900)


def bad_request(call, **kw) -> dict:
    """The error body of a call that must fail with 400."""
    with pytest.raises(openai.BadRequestError) as info:
        call(**kw)
    return info.value.body


def test_completions_adaptive_plain_streamed_and_logprobs(client):
    r = client.completions.create(model="default", prompt=QUESTION, logprobs=2, max_tokens=40)
    choice = r.choices[0]
    assert r.object == "text_completion" and choice.text and choice.finish_reason in ("stop", "length")
    trace = r.model_extra["arag"]
    assert trace["mode"] == "adaptive" and trace["answer"] == choice.text and trace["costs"]["lm_calls"] >= 1
    lp = choice.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) > 0
    assert all(t in alts and len(alts) <= 3 for t, alts in zip(lp.tokens, lp.top_logprobs))
    assert lp.text_offset == sorted(lp.text_offset)
    assert r.usage.completion_tokens == len(lp.tokens)

    pieces, traces = [], []
    for chunk in client.completions.create(model="default", prompt=QUESTION, max_tokens=40, stream=True):
        pieces += [c.text for c in chunk.choices if c.text]
        if (chunk.model_extra or {}).get("arag"):
            traces.append(chunk.model_extra["arag"])
    assert "".join(pieces) == choice.text and [t["answer"] for t in traces] == [choice.text]


def test_completions_raw_prompt_list_n_stop_echo(client, default_lm):
    prompts = ["Name a colour.", "Name an animal."]
    kw = dict(model="default", prompt=prompts, n=2, temperature=1.0, seed=5, max_tokens=8, echo=True,
              stop=["\n"], extra_body={"arag": {"retrieval": False}})
    a, b = client.completions.create(**kw), client.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1, 2, 3]
    assert [c.text for c in a.choices] == [c.text for c in b.choices]  # seeded
    for c in a.choices:
        prompt = prompts[c.index // 2]
        assert c.text.startswith(prompt) and "\n" not in c.text[len(prompt):]
    assert [t["mode"] for t in a.model_extra["arag"]] == ["raw", "raw"]
    # the same model work as the chat endpoint's raw mode for one user message
    expected = default_lm.generate([Prompt.user(prompts[0])], n=2, temperature=1.0, seed=5, max_new_tokens=8,
                                   stop=["\n"])[0]
    assert [prompts[0] + g.text for g in expected] == [c.text for c in a.choices[:2]]
    streamed: dict[int, str] = {}
    for chunk in client.completions.create(**kw, stream=True):
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + c.text
    assert [streamed[i] for i in range(4)] == [c.text for c in a.choices]


def test_models_retrieve(client):
    assert client.models.retrieve("default").id == "default"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-17")


def _chat(client, **kw):
    return client.chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTION}], **kw)


def test_adaptive_mode_honours_max_tokens_stop_temperature_and_seed(client):
    never = {"arag": {"trigger": "never"}}
    full = _chat(client, extra_body=never).choices[0].message.content
    words = full.split()
    assert len(words) >= 4, full

    short = _chat(client, max_tokens=3, logprobs=True, extra_body=never)
    assert short.usage.completion_tokens <= 3 and short.choices[0].finish_reason == "length"
    assert len(short.choices[0].logprobs.content) <= 3 and full.startswith(short.choices[0].message.content)

    stop = " " + words[2]
    cut = _chat(client, stop=[stop], extra_body=never).choices[0]
    assert cut.message.content == full[:full.index(stop)].strip()
    assert cut.finish_reason == "stop" and cut.model_extra["stop_reason"] == stop
    pieces = [c.choices[0].delta.content or "" for c in _chat(client, stop=[stop], stream=True, extra_body=never)
              if c.choices]
    assert "".join(pieces) == cut.message.content  # nothing from the stop string on was streamed

    sampled = [_chat(client, temperature=1.0, top_p=0.95, seed=s, max_tokens=12, extra_body=never).choices[0].message.content
               for s in (1, 1, 2, 3)]
    assert sampled[0] == sampled[1]  # same seed, same answer
    assert any(t != full[:len(t)] for t in sampled)  # sampling: not the greedy answer every time


def test_usage_counts_the_returned_text_and_trace_the_model_work(client):
    r = _chat(client, logprobs=True, extra_body={"arag": {"trigger": "always"}})
    costs = r.model_extra["arag"]["costs"]
    assert r.usage.completion_tokens == len(r.choices[0].logprobs.content)
    assert costs["generated_tokens"] > r.usage.completion_tokens  # the discarded drafts are counted there


def test_non_streamed_client_that_gives_up_cancels_its_work(server, default_lm):
    """A 1000-token request whose client times out must not keep the only worker busy."""
    impatient = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=3)
    before = default_lm.usage.snapshot()
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="default", messages=COUNTING, max_tokens=1000,
                                          extra_body={"arag": {"retrieval": False}, "continue_final_message": True})
    t0 = time.perf_counter()
    quick = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)
    r = quick.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                                      extra_body={"arag": {"retrieval": False}})
    waited = time.perf_counter() - t0
    assert r.choices[0].message.content is not None
    # greedy counting from this prefix has not ended after 150 tokens (checked with default_lm.generate):
    # uncancelled, the worker would still be counting
    assert default_lm.usage.since(before).generated_tokens < 150, waited


def test_deeply_nested_json_is_400(server):
    body = b'{"model": "default", "messages": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    r = httpx.post(server.base_url + "/chat/completions", content=body,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("extra, param", [
    ({"logprobs": "false"}, "logprobs"),
    ({"arag": {"retrieval": "false"}}, "arag.retrieval"),
    ({"stream": "false"}, "stream"),
])
def test_string_false_is_not_a_boolean(client, extra, param):
    err = bad_request(_chat, client=client, extra_body=extra)
    assert err["param"] == param


def test_unknown_trigger_is_400_before_streaming(client):
    for stream in (False, True):
        err = bad_request(_chat, client=client, stream=stream, extra_body={"arag": {"trigger": "psychic"}})
        assert err["param"] == "arag.trigger" and "psychic" in err["message"]
    err = bad_request(client.completions.create, model="default", prompt=QUESTION, stream=True,
                      extra_body={"arag": {"trigger": "psychic"}})
    assert err["param"] == "arag.trigger"


@pytest.mark.parametrize("kw, param", [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
])
def test_tools_and_response_format_are_refused_by_name(client, kw, param):
    err = bad_request(_chat, client=client, **kw)
    assert err["param"] == param and err["code"] == "unsupported_parameter"


def test_max_tokens_cap_is_the_servers(client, server, default_lm, demo_docs):
    """This server raised the cap to 2048 (`arag serve --max-tokens`); the default one refuses 2000."""
    r = client.completions.create(model="default", prompt="Say hi.", max_tokens=2000,
                                  extra_body={"arag": {"retrieval": False}})
    assert r.choices[0].text is not None
    pipe = Pipeline(lm=default_lm, retriever=None, trigger=TokenConfidence(), config=CONFIG)
    with ServerThread(create_app(pipe)) as default_server:
        c = openai.OpenAI(base_url=default_server.base_url, api_key="unused", max_retries=0)
        err = bad_request(c.completions.create, model="default", prompt="Say hi.", max_tokens=2000)
        assert err["param"] == "max_tokens" and "1024" in err["message"]


def test_prompt_longer_than_the_context_is_refused(client):
    question = "why " * 12_000 + "?"  # about 12,000 tokens: over SmolLM2's 8,192
    t0 = time.perf_counter()
    for stream in (False, True):  # streamed too: refused before the reply starts
        err = bad_request(client.chat.completions.create, model="default", stream=stream,
                          messages=[{"role": "user", "content": question}])
        assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
    err = bad_request(client.completions.create, model="default", prompt=question,
                      extra_body={"arag": {"retrieval": False}})
    assert err["code"] == "context_length_exceeded" and err["param"] == "prompt"
    assert time.perf_counter() - t0 < 120  # refused before decoding, not after


def test_llamaindex_openailike_default_mode_uses_completions(server):
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model="default", api_base=server.base_url, api_key=KEY, max_tokens=40, timeout=600)
    assert not llm.is_chat_model
    text = llm.complete(QUESTION).text
    assert text.strip()
    assert "".join(r.delta or "" for r in llm.stream_complete(QUESTION)) == text
