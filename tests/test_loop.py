"""Loop mechanics on a tiny randomly initialised model (fast): budgets, step assembly, masking,
retrieval budget, costs. Behaviour on the real model is in test_core_behaviour.py."""
from __future__ import annotations

import math

import pytest
import torch

from corpora.documents import Document
from rag.errors import UsageError
from rag.hf_model import HFLanguageModel
from rag.lm import Generation
from rag.loop import AdaptiveRAG, LoopConfig, step_text
from rag.query import form_query
from retrievers import build_retriever
from triggers import Always, Never, TokenConfidence

DOCS = [
    Document(id="d1", title="Paris", text="Paris is the capital and largest city of France."),
    Document(id="d2", title="Lyon", text="Lyon is a city in France on the Rhone."),
    Document(id="d3", title="Berlin", text="Berlin is the capital of Germany."),
]


@pytest.fixture(scope="module")
def tiny_lm(default_lm):
    """A 2-layer random Llama with the default model's tokenizer: fast, deterministic, nonsense."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(default_lm.tokenizer), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048)
    return HFLanguageModel(LlamaForCausalLM(cfg), default_lm.tokenizer, name="tiny-random")


@pytest.fixture(scope="module")
def bm25():
    return build_retriever("bm25", DOCS, progress=False)


def test_step_and_token_budgets(tiny_lm, bm25):
    rag = AdaptiveRAG(tiny_lm, bm25, Never(), config=LoopConfig(max_steps=3, step_tokens=4, stops=()))
    a = rag.answer("Where is Paris?")
    assert len(a.steps) <= 3
    assert all(len(s.draft_tokens) <= 4 for s in a.steps)
    if len(a.steps) == 3:
        assert a.stop_reason == "step budget"
    assert a.costs.retriever_calls == 0 and not a.retrieved
    assert a.costs.lm_calls == len(a.steps)
    assert a.costs.generated_tokens >= sum(len(s.draft_tokens) for s in a.steps)


def test_retrieval_budget_caps_retrieval(tiny_lm, bm25):
    rag = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(max_steps=3, step_tokens=3, max_retrievals=1, stops=()))
    a = rag.answer("Where is Paris?")
    assert a.costs.retriever_calls == 1
    assert a.steps[0].passages and all(s.fired for s in a.steps)
    assert all(not s.passages for s in a.steps[1:])
    # a fired step that retrieved is regenerated: two LM calls for it
    assert a.costs.lm_calls == len(a.steps) + 1


def test_pre_generation_check_retrieves_with_the_question(tiny_lm, bm25):
    rag = AdaptiveRAG(tiny_lm, bm25, Always(before_generation=True), config=LoopConfig(max_steps=1, step_tokens=3, max_retrievals=1))
    a = rag.answer("capital of Germany")
    assert a.pre_check is not None and a.pre_check.fired
    assert a.pre_retrieval[0].id == "d3"
    assert a.retrieved and a.costs.retriever_calls == 1


def test_accepted_text_is_the_concatenation_of_steps(tiny_lm, bm25):
    rag = AdaptiveRAG(tiny_lm, bm25, TokenConfidence(threshold=0.5), config=LoopConfig(max_steps=3, step_tokens=5, stops=()))
    a = rag.answer("Where is Lyon?")
    assert a.text == "".join(s.text for s in a.steps).strip()
    for s in a.steps:
        assert math.isfinite(s.signal.score)
        assert s.fired == (math.exp(min(t["logprob"] for t in s.draft_tokens)) < 0.5)


def test_step_text_puts_back_the_sentence_punctuation():
    assert step_text(Generation(text="Paris is big", stop=". ")) == "Paris is big."
    assert step_text(Generation(text="Paris", stop="\n")) == "Paris"
    assert step_text(Generation(text="Paris.", finished=True)) == "Paris."


def test_masked_query_drops_unsure_tokens():
    draft = Generation(text=" Paris is nice", tokens=["ĠParis", "Ġis", "Ġnice"],
                       logprobs=[math.log(0.9), math.log(0.1), math.log(0.8)])
    join = lambda toks: "".join(toks).replace("Ġ", " ")
    assert form_query("Where?", draft, join, mask_below=0.4) == "Where? Paris nice"
    assert form_query("Where?", None, join) == "Where?"


def test_bad_loop_arguments_are_usage_errors(tiny_lm, bm25):
    with pytest.raises(UsageError):
        AdaptiveRAG(tiny_lm, bm25, Never()).answer("   ")
    with pytest.raises(UsageError):
        LoopConfig(max_steps=0)
    from retrievers import RetrieverError

    with pytest.raises(RetrieverError):
        LoopConfig(k=0)


def test_answer_token_budget_and_a_stop_string_spanning_two_steps(tiny_lm):
    """A caller's `max_tokens` caps the accepted steps' tokens; a caller's stop string ends the answer
    before it even when it spans a step boundary, and the streamed text never runs past it."""
    cfg = dict(max_steps=4, step_tokens=4, stops=())
    full = AdaptiveRAG(tiny_lm, None, Never(), config=LoopConfig(**cfg)).answer("Where is Paris?")
    assert len(full.steps) >= 2
    short = AdaptiveRAG(tiny_lm, None, Never(), config=LoopConfig(**cfg, answer_tokens=6)).answer("Where is Paris?")
    assert sum(len(s.generation.token_ids) for s in short.steps) == 6 and short.stop_reason == "token budget"
    assert full.text.startswith(short.text) and len(short.text) < len(full.text)

    raw = "".join(s.text for s in full.steps)
    boundary = len(full.steps[0].text)
    stop = raw[boundary - 2: boundary + 2]
    expected = raw[:raw.find(stop)].strip()
    pieces: list[str] = []
    cut = AdaptiveRAG(tiny_lm, None, Never(), config=LoopConfig(**cfg, answer_stops=(stop,))).answer(
        "Where is Paris?", on_text=pieces.append)
    assert cut.text == expected and cut.stop_reason == "stop string" and cut.stop_string == stop
    assert "".join(pieces) == expected
