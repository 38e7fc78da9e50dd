"""The loop on the real default model and the shipped demo corpus: the behaviour a user sees."""
from __future__ import annotations

import math

import pytest

from rag.loop import AdaptiveRAG, LoopConfig
from retrievers import build_retriever
from triggers import Always, Never, TokenConfidence

pytestmark = pytest.mark.slow  # every test here runs the real default model

OPEC = "how many countries are a part of opec"


@pytest.fixture(scope="module")
def demo_bm25(demo_docs):
    return build_retriever("bm25", demo_docs, progress=False)


def test_always_answers_from_the_corpus(default_lm, demo_bm25):
    a = AdaptiveRAG(default_lm, demo_bm25, Always()).answer(OPEC)
    assert a.costs.retriever_calls >= 1 and a.retrieved
    assert "14" in a.text
    assert any(p.title == "OPEC" for p in a.sources)


def test_never_does_not_retrieve(default_lm, demo_bm25):
    a = AdaptiveRAG(default_lm, demo_bm25, Never()).answer(OPEC)
    assert a.costs.retriever_calls == 0 and not a.retrieved
    # one LM call per draft: each accepted step's, plus the draft that showed the answer was over when the
    # loop stopped on one it did not keep (the model ended the answer, or only repeated an earlier step)
    last = a.steps[-1].generation
    discarded = a.stop_reason in ("end of answer", "repetition") and not (last.finished or last.stop)
    assert a.costs.lm_calls == len(a.steps) + discarded
    assert a.costs.generated_tokens > 0


@pytest.mark.parametrize("aggregation", ["min_prob", "mean_logprob", "max_entropy", "flare"])
def test_token_confidence_fires_exactly_when_the_score_crosses(default_lm, demo_bm25, aggregation):
    trig = TokenConfidence(aggregation=aggregation)
    a = AdaptiveRAG(default_lm, demo_bm25, trig, config=LoopConfig(max_steps=3)).answer("who got the first nobel prize in physics")
    assert a.steps
    for s in a.steps:
        score, theta = s.signal.score, trig.threshold
        assert math.isfinite(score)
        lps = [t["logprob"] for t in s.draft_tokens]
        expected = {
            "min_prob": math.exp(min(lps)) < theta,
            "mean_logprob": sum(lps) / len(lps) < theta,
            "max_entropy": max(t["entropy"] for t in s.draft_tokens) > theta,
            "flare": any(math.exp(lp) < theta for lp in lps),
        }[aggregation]
        assert s.fired == expected
        assert bool(s.passages) == (s.fired and a.costs.retriever_calls > 0 and s.query is not None)
