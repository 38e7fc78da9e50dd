"""`arag chat` through a stdin script, the conversation → (question, history, condensed query) split,
and the loop's streaming callback (accepted text only, adding up to the answer)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rag.apps.conversation import conversation_turn
from rag.errors import UsageError
from rag.loop import AdaptiveRAG, LoopConfig
from retrievers import build_retriever
from triggers import Always, TokenConfidence

DOCS = [("d0", "OPEC", "OPEC has 14 member countries as of 2018. Its headquarters are in Vienna."),
        ("d1", "Paris", "Paris is the capital of France."),
        ("d2", "Hamlet", "Hamlet is a tragedy written by William Shakespeare.")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("chat") / "c.jsonl"
    p.write_text("".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCS))
    return p


def test_follow_up_query_carries_the_conversation():
    turn = conversation_turn([("system", "Be brief."), ("user", "Who wrote Hamlet?"),
                              ("assistant", "William Shakespeare."), ("user", "When was he born?")])
    assert turn.question == "When was he born?"
    assert turn.history[0] == ("system", "Be brief.") and turn.history[-1] == ("assistant", "William Shakespeare.")
    assert "Shakespeare" in turn.retrieval_query and "Hamlet" in turn.retrieval_query
    assert turn.retrieval_query.endswith("When was he born?")
    assert conversation_turn([("user", "Only one?")]).retrieval_query == "Only one?"


@pytest.mark.parametrize("messages", [[], [("user", "q"), ("assistant", "a")], [("wizard", "q")], [("user", "  ")]])
def test_bad_conversations(messages):
    with pytest.raises(UsageError):
        conversation_turn(messages)


@pytest.mark.parametrize("trigger", [Always(), TokenConfidence()])
@pytest.mark.slow
def test_streamed_pieces_add_up_to_the_answer(default_lm, corpus, trigger):
    from corpora.documents import load_documents

    bm25 = build_retriever("bm25", load_documents([str(corpus)]), progress=False)
    loop = AdaptiveRAG(default_lm, bm25, trigger, config=LoopConfig(k=1, max_steps=2, step_tokens=20))
    pieces: list[str] = []
    streamed = loop.answer("How many countries are in OPEC?", on_text=pieces.append)
    plain = loop.answer("How many countries are in OPEC?")
    assert "".join(pieces) == streamed.text == plain.text
    if streamed.retrieved:  # the regenerated step arrives token by token, not as one piece
        assert len(pieces) > len(streamed.steps)


@pytest.mark.slow
def test_history_reaches_the_retriever(default_lm, corpus):
    from corpora.documents import load_documents

    bm25 = build_retriever("bm25", load_documents([str(corpus)]), progress=False)
    loop = AdaptiveRAG(default_lm, bm25, Always(), config=LoopConfig(k=1, max_steps=1, step_tokens=12))
    turn = conversation_turn([("user", "Who wrote Hamlet?"), ("assistant", "Shakespeare."), ("user", "When was he born?")])
    a = loop.answer(turn.question, history=turn.history, retrieval_query=turn.retrieval_query)
    assert a.steps[0].query.startswith(turn.retrieval_query) and a.sources[0].id == "d2"


@pytest.mark.slow
def test_chat_two_turns_sources_and_clean_exit(corpus):
    script = "How many countries are in OPEC?\nWhere is its headquarters?\n/sources\n/trigger nope\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "rag.cli", "chat", "--corpus", str(corpus), "--trigger", "always",
                        "--max-steps", "1", "--k", "1"], input=script, capture_output=True, text=True, env=env,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout
    assert out.count("[retrieval: fired") == 2  # one status line per answer
    assert "OPEC (d0)" in out
    assert "[1] OPEC (d0): OPEC has 14 member countries" in out  # /sources of the second answer (condensed query)
    assert "error: unknown trigger 'nope'" in out
    assert out.rstrip().endswith("bye")  # end of input (Ctrl-D) exits cleanly
