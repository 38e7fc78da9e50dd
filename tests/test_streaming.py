"""Streaming through `arag serve` with the official openai client (issue 15, defect 1): the concatenated
deltas equal the non-streamed answer, never hold a stop string, and no error event arrives — on the
answers that used to leak text past an abbreviation ("D.C.", "F.") or a stop string."""
from __future__ import annotations

from contextlib import ExitStack

import openai
import pytest

from rag.apps.server import ServerThread, create_app
from rag.loop import LoopConfig
from rag.pipeline import Pipeline
from retrievers import build_retriever
from triggers import TokenConfidence

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clients(default_lm, demo_docs):
    """``no-retrieval``: like `arag serve --max-retrievals 0` (every step streams token by token);
    ``adaptive``: retrieval allowed (regenerated steps stream token by token)."""
    bm25 = build_retriever("bm25", demo_docs, progress=False)
    configs = {"no-retrieval": LoopConfig(max_steps=3, step_tokens=32, max_retrievals=0),
               "adaptive": LoopConfig(max_steps=3, step_tokens=32)}
    with ExitStack() as stack:
        out = {}
        for name, config in configs.items():
            srv = stack.enter_context(ServerThread(create_app(Pipeline(default_lm, bm25, TokenConfidence(), config))))
            out[name] = openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=900)
        yield out


def _both(client: openai.OpenAI, **kw) -> tuple[str, str, dict]:
    """The plain answer, the concatenated streamed deltas (the client raises on an error event), the trace."""
    plain = client.chat.completions.create(model="default", seed=3, **kw)
    pieces, traces = [], []
    for chunk in client.chat.completions.create(model="default", seed=3, stream=True, **kw):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if (chunk.model_extra or {}).get("arag"):
            traces.append(chunk.model_extra["arag"])
    assert len(traces) == 1
    return plain.choices[0].message.content, "".join(pieces), plain.model_extra["arag"]


@pytest.mark.parametrize("server,question,trigger", [
    ("no-retrieval", "where is washington d.c.", None),
    ("adaptive", "who was john f. kennedy", "always"),
])
def test_streamed_answer_equals_the_plain_one(clients, server, question, trigger):
    extra = {"extra_body": {"arag": {"trigger": trigger}}} if trigger else {}
    plain, streamed, _ = _both(clients[server], messages=[{"role": "user", "content": question}], **extra)
    assert plain and streamed == plain


def test_streamed_multi_sentence_answer_regenerated_with_passages(clients):
    question = "Write a long paragraph about the city of Paris, its history and its monuments."
    plain, streamed, trace = _both(clients["adaptive"], messages=[{"role": "user", "content": question}],
                                   max_tokens=48, extra_body={"arag": {"trigger": "always"}})  # two or three steps
    assert streamed == plain
    assert len(trace["steps"]) >= 2 and any(s["fired"] and s["passage_ids"] for s in trace["steps"])


@pytest.mark.parametrize("stop", [[". "], [","]])
def test_raw_streaming_never_sends_a_stop_string(clients, stop):
    plain, streamed, _ = _both(clients["adaptive"], messages=[{"role": "user", "content": "where is washington d.c."}],
                               max_tokens=40, stop=stop, extra_body={"arag": {"retrieval": False}})
    assert streamed == plain
    assert not any(s in streamed for s in stop)
