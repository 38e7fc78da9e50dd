"""`arag serve` over real HTTP on 127.0.0.1: the official openai client, streaming, logprobs, the
OpenAI-compatible LM backend against it, concurrency, and bad requests."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from rag.apps.server import Limits, ServerThread, create_app
from rag.loop import AdaptiveRAG, LoopConfig
from rag.loop.prompts import PromptTemplates
from rag.models.lm import Prompt
from rag.models.openai_backend import OpenAICompatibleModel
from rag.pipeline import Pipeline
from retrievers import build_retriever
from triggers import TokenConfidence
from triggers.base import StepState

KEY = "test-key"
QUESTION = "who wrote the novel 1984"
CONFIG = LoopConfig(max_steps=2, step_tokens=24)


@pytest.fixture(scope="module")
def bm25(demo_docs):
    return build_retriever("bm25", demo_docs, progress=False)


@pytest.fixture(scope="module")
def server(default_lm, bm25):
    pipe = Pipeline(lm=default_lm, retriever=bm25, trigger=TokenConfidence(), config=CONFIG)
    app = create_app(pipe, api_key=KEY, limits=Limits(max_body_bytes=20_000, max_messages=8))
    with ServerThread(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=900)


def raw(**kw):
    return {"extra_body": {"arag": {"retrieval": False}}, **kw}


@pytest.mark.slow
def test_openai_client_plain_then_streaming_same_text(client):
    msgs = [{"role": "user", "content": QUESTION}]
    r = client.chat.completions.create(model="default", messages=msgs, seed=7, logprobs=True, top_logprobs=3)
    text = r.choices[0].message.content
    assert text and r.choices[0].finish_reason in ("stop", "length")
    trace = r.model_extra["arag"]
    assert {"fired", "score", "sources", "costs", "steps"} <= set(trace)
    assert trace["costs"]["lm_calls"] >= 1 and trace["fired"] == any(s["fired"] for s in trace["steps"])
    if trace["retrieved"]:
        assert trace["sources"] and {"id", "title"} <= set(trace["sources"][0])
    content = r.choices[0].logprobs.content
    assert content and all(c.logprob <= 0 and len(c.top_logprobs) == 3 for c in content)
    assert all(c.top_logprobs[0].logprob >= c.logprob - 1e-6 for c in content)  # the top alternative is the most likely
    assert " ".join("".join(c.token for c in content).split()) == " ".join(text.split())
    assert r.usage.completion_tokens >= len(content)

    stream = client.chat.completions.create(model="default", messages=msgs, seed=7, stream=True)
    pieces, traces = [], []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if (chunk.model_extra or {}).get("arag"):
            traces.append(chunk.model_extra["arag"])
    assert "".join(pieces) == text
    assert len(traces) == 1 and traces[0]["answer"] == text
    if trace["retrieved"]:  # a step regenerated with passages streams token by token
        assert len(pieces) > 3


@pytest.mark.slow
def test_raw_mode_sampling_is_seeded_and_has_logprobs(client):
    kw = raw(model="default", messages=[{"role": "user", "content": "Name a colour."}], n=2, temperature=1.0,
             seed=5, max_tokens=8, logprobs=True, top_logprobs=2)
    a, b = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert len(a.choices) == 2 and all(c.logprobs.content for c in a.choices)
    assert a.model_extra["arag"]["mode"] == "raw" and a.usage.completion_tokens <= 16


@pytest.mark.slow
def test_models_and_health(server, client):
    ids = [m.id for m in client.models.list().data]
    assert "default" in ids
    assert httpx.get(server.base_url.removesuffix("/v1") + "/health").json()["status"] == "ok"


@pytest.mark.slow
def test_backend_token_confidence_over_http_matches_in_process(server, default_lm, bm25):
    remote = OpenAICompatibleModel.from_spec(f"openai:{server.base_url}/default", api_key=KEY)
    assert remote.is_arag_server()
    prompts = [PromptTemplates().build(QUESTION), Prompt.user("Describe Paris.", prefix="Paris is a city.")]
    for prompt in prompts:
        local = default_lm.generate([prompt], max_new_tokens=24, stop=(". ", "\n"))[0][0]
        http = remote.generate([prompt], max_new_tokens=24, stop=(". ", "\n"))[0][0]
        assert http.text == local.text and http.stop == local.stop and http.finished == local.finished
        assert http.logprobs == pytest.approx(local.logprobs, abs=1e-5)
        for agg in ("min_prob", "mean_logprob", "flare"):
            trig = TokenConfidence(aggregation=agg)
            assert trig.score(StepState(QUESTION, draft=http)).score == pytest.approx(
                trig.score(StepState(QUESTION, draft=local)).score, abs=1e-5)
        # entropies from the top-5 log-probs are lower bounds of the exact ones
        assert http.approximate_entropy and not local.approximate_entropy
        assert all(a <= e + 1e-5 for a, e in zip(http.entropies, local.entropies))
    samples_local = default_lm.generate([prompts[0]], n=3, temperature=1.0, max_new_tokens=8, seed=11)[0]
    samples_http = remote.generate([prompts[0]], n=3, temperature=1.0, max_new_tokens=8, seed=11)[0]
    assert [g.text for g in samples_http] == [g.text for g in samples_local]
    # the whole loop over HTTP makes the same decisions as in-process
    a_http = AdaptiveRAG(remote, bm25, TokenConfidence(), config=CONFIG).answer(QUESTION)
    a_local = AdaptiveRAG(default_lm, bm25, TokenConfidence(), config=CONFIG).answer(QUESTION)
    assert a_http.text == a_local.text
    assert [s.fired for s in a_http.steps] == [s.fired for s in a_local.steps]
    # the HTTP backend cannot stop the server at a step end, so its steps run to the budget and are cut after
    assert a_http.costs.generated_tokens >= a_local.costs.generated_tokens


@pytest.mark.slow
def test_twenty_concurrent_requests_do_not_mix(client, default_lm):
    words = [f"word{i}" for i in range(20)]
    prompts = [f"Repeat exactly: {w}" for w in words]

    def ask(p):
        r = client.chat.completions.create(**raw(model="default", messages=[{"role": "user", "content": p}],
                                                 max_tokens=6))
        return r.choices[0].message.content, r.usage.prompt_tokens

    with ThreadPoolExecutor(20) as pool:
        got = list(pool.map(ask, prompts))
    for p, (text, prompt_tokens) in zip(prompts, got):
        expected = default_lm.generate([p], max_new_tokens=6)[0][0]
        assert text == expected.text
        assert prompt_tokens == expected.prompt_tokens  # per-request costs are not mixed either


def _post(server, body, key=KEY, raw_body: bytes | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = raw_body if raw_body is not None else json.dumps(body).encode()
    return httpx.post(server.base_url + "/chat/completions", content=data,
                      headers={**headers, "Content-Type": "application/json"}, timeout=300)


@pytest.mark.parametrize("case, status, param", [
    ("malformed", 400, None), ("not_object", 400, None), ("no_messages", 400, "messages"),
    ("empty_messages", 400, "messages"), ("wrong_role", 400, "messages[0].role"), ("too_many", 400, "messages"),
    ("too_large", 413, None), ("bad_key", 401, None), ("no_key", 401, None), ("unknown_model", 404, "model"),
    ("n_adaptive", 400, "n"), ("bad_temperature", 400, "temperature"), ("last_not_user", 400, "messages"),
    ("frequency_penalty", 400, "frequency_penalty"), ("bad_ngram", 400, "no_repeat_ngram_size"),
])
@pytest.mark.slow
def test_bad_requests_get_openai_style_4xx(server, case, status, param):
    ok = [{"role": "user", "content": "hi"}]
    kw: dict = {"body": {"model": "default", "messages": ok}}
    if case == "malformed":
        kw["raw_body"] = b'{"model": "default", "messages": ['
    elif case == "not_object":
        kw["body"] = ["messages"]
    elif case == "no_messages":
        kw["body"] = {"model": "default"}
    elif case == "empty_messages":
        kw["body"] = {"model": "default", "messages": []}
    elif case == "wrong_role":
        kw["body"] = {"model": "default", "messages": [{"role": "wizard", "content": "hi"}]}
    elif case == "too_many":
        kw["body"] = {"model": "default", "messages": ok * 9}
    elif case == "too_large":
        kw["body"] = {"model": "default", "messages": [{"role": "user", "content": "x" * 30_000}]}
    elif case == "bad_key":
        kw["key"] = "wrong"
    elif case == "no_key":
        kw["key"] = None
    elif case == "unknown_model":
        kw["body"] = {"model": "gpt-17", "messages": ok}
    elif case == "n_adaptive":
        kw["body"] = {"model": "default", "messages": ok, "n": 2}
    elif case == "bad_temperature":
        kw["body"] = {"model": "default", "messages": ok, "temperature": "hot"}
    elif case == "frequency_penalty":  # additive OpenAI penalties have no transformers processor
        kw["body"] = {"model": "default", "messages": ok, "frequency_penalty": 0.5}
    elif case == "bad_ngram":
        kw["body"] = {"model": "default", "messages": ok, "no_repeat_ngram_size": -1}
    elif case == "last_not_user":
        kw["body"] = {"model": "default", "messages": ok + [{"role": "assistant", "content": "hello"}]}
    r = _post(server, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"] and err["type"]
    if param:
        assert err["param"] == param
    # the server keeps serving
    ok_r = _post(server, {"model": "default", "messages": ok, "max_tokens": 2, "arag": {"retrieval": False}})
    assert ok_r.status_code == 200 and ok_r.json()["choices"][0]["message"]["content"] is not None


@pytest.mark.slow
def test_unknown_route_is_json(server):
    r = httpx.get(server.base_url + "/nothing-here")
    assert r.status_code == 404 and "error" in r.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_arag_serve_command(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "d0", "title": "OPEC", "text": "OPEC has 14 member countries."}) + "\n")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--corpus", str(corpus),
                             "--trigger", "always", "--max-steps", "1", "--max-tokens", "2048"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "arag serve did not come up"
            time.sleep(0.5)
        c = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=600)
        r = c.chat.completions.create(model="default", messages=[{"role": "user", "content": "How many countries are in OPEC?"}])
        assert r.model_extra["arag"]["sources"][0]["id"] == "d0"
        # --max-tokens raised the cap (1024 by default) for both endpoints
        r = c.completions.create(model="default", prompt="How many countries are in OPEC?", max_tokens=2000)
        assert r.model_extra["arag"]["sources"][0]["id"] == "d0" and r.choices[0].text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_backend_reports_a_malformed_logprobs_reply_in_one_line():
    """A server whose logprobs entries lack their fields: a ModelError naming the server, not a KeyError."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rag.models.lm import ModelError

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # /v1/models: not an arag server
            self._reply({"object": "list", "data": []})

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self._reply({"choices": [{"index": 0, "message": {"content": "Paris"}, "finish_reason": "stop",
                                      "logprobs": {"content": [{"bytes": [80]}]}}], "usage": {}})

        def _reply(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}/v1"
        with pytest.raises(ModelError, match=f"{url}: malformed logprobs in the reply"):
            OpenAICompatibleModel(url, "m").generate(["capital of France?"])
    finally:
        httpd.shutdown()


def test_json_text_writes_infinite_scores_as_strings():
    """An empty draft's token-confidence score is inf; `arag ask --json` and the server must still emit valid JSON."""
    import math

    from rag.loop.trace import json_text

    text = json_text({"score": math.inf, "steps": [{"score": -math.inf}, (1.5, float("nan"))]})
    assert json.loads(text) == {"score": "inf", "steps": [{"score": "-inf"}, [1.5, "nan"]]}
    assert "Infinity" not in text
