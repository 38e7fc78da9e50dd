"""Loop mechanics on a tiny randomly initialised model (fast): budgets, step assembly, masking,
retrieval budget, costs. Behaviour on the real model is in test_core_behaviour.py."""
from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch

from corpora.documents import Document
from rag.errors import UsageError
from rag.loop import AdaptiveRAG, LoopConfig
from rag.loop.query import form_query
from rag.models.lm import Generation
from retrievers import build_retriever
from triggers import Always, Never, TokenConfidence

DOCS = [
    Document(id="d1", title="Paris", text="Paris is the capital and largest city of France."),
    Document(id="d2", title="Lyon", text="Lyon is a city in France on the Rhone."),
    Document(id="d3", title="Berlin", text="Berlin is the capital of Germany."),
]


@pytest.fixture(scope="module")
def bm25():
    return build_retriever("bm25", DOCS, progress=False)


def test_step_and_token_budgets(tiny_lm, bm25):
    rag = AdaptiveRAG(tiny_lm, bm25, Never(), config=LoopConfig(max_steps=3, step_tokens=4, sentence_steps=False))
    a = rag.answer("Where is Paris?")
    assert len(a.steps) <= 3
    assert all(len(s.draft_tokens) <= 4 for s in a.steps)
    if len(a.steps) == 3:
        assert a.stop_reason == "step budget"
    assert a.costs.retriever_calls == 0 and not a.retrieved
    assert a.costs.lm_calls == len(a.steps)
    assert a.costs.generated_tokens >= sum(len(s.draft_tokens) for s in a.steps)


def test_retrieval_budget_caps_retrieval(tiny_lm, bm25):
    rag = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(max_steps=3, step_tokens=3, max_retrievals=1, sentence_steps=False))
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
    rag = AdaptiveRAG(tiny_lm, bm25, TokenConfidence(threshold=0.5), config=LoopConfig(max_steps=3, step_tokens=5, sentence_steps=False))
    a = rag.answer("Where is Lyon?")
    assert a.text == "".join(s.text for s in a.steps).strip()
    for s in a.steps:
        assert math.isfinite(s.signal.score)
        assert s.fired == (math.exp(min(t["logprob"] for t in s.draft_tokens)) < 0.5)


@contextmanager
def logits_hook(lm, change):
    """Steer the random model: ``change(logits, input_ids)`` edits its output logits in place."""
    handle = lm.model.register_forward_hook(lambda m, args, kwargs, out: change(out.logits, kwargs["input_ids"]),
                                            with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _mask(logits, input_ids):
    logits[..., :100] = -math.inf


def _echo(logits, input_ids):
    """Make each position prefer the token it was fed: greedy decoding then loops on one token. (A
    prefill returns the last position's logits only: the fed tokens are aligned from the end.)"""
    fed = input_ids[:, -logits.shape[1]:, None]
    logits.scatter_add_(-1, fed, torch.full(fed.shape, 100.0))


def test_entropy_is_finite_when_logits_are_minus_infinity(tiny_lm):
    """Models that mask part of the vocabulary (-inf logits) used to give NaN entropies (0 · -inf)."""
    with logits_hook(tiny_lm, _mask):
        g = tiny_lm.generate(["Where is Paris?"], max_new_tokens=4)[0][0]
        s = tiny_lm.score("Where is Paris?", " Paris is")
    assert g.entropies and all(math.isfinite(h) for h in g.entropies + s.entropies)


def test_unseeded_sampling_leaves_the_global_rng_alone(tiny_lm):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_lm.generate(["Where is Paris?"], n=2, temperature=1.0, max_new_tokens=3, seed=None)
    assert torch.equal(torch.rand(3), expected)


def test_repetition_controls_change_choices_not_recorded_statistics(tiny_lm):
    prompt = "Where is Paris?"
    with logits_hook(tiny_lm, _echo):
        plain = tiny_lm.generate([prompt], max_new_tokens=12)[0][0]
        controlled = tiny_lm.generate([prompt], max_new_tokens=12, no_repeat_ngram_size=2, repetition_penalty=1.5)[0][0]
        p_ids = tiny_lm.encode(tiny_lm.render(prompt))
        with torch.inference_mode():
            logits = tiny_lm.model(input_ids=torch.tensor([p_ids + controlled.token_ids])).logits[0, len(p_ids) - 1:-1]
    logp = torch.log_softmax(logits.float(), -1)
    assert len(set(plain.token_ids)) == 1  # the steered model loops on one token without controls
    ids = controlled.token_ids
    bigrams = [tuple(ids[i:i + 2]) for i in range(len(ids) - 1)]
    assert len(set(bigrams)) == len(bigrams) and len(set(ids)) > 1
    # the recorded statistics are the model's own (teacher-forced) ones, not the penalised distribution's
    assert controlled.logprobs == pytest.approx(logp.gather(1, torch.tensor(ids)[:, None])[:, 0].tolist(), abs=1e-3)
    assert controlled.entropies == pytest.approx(torch.special.entr(logp.exp()).sum(-1).tolist(), abs=1e-3)


def test_a_step_that_loops_ends_the_answer(tiny_lm):
    with logits_hook(tiny_lm, _echo):
        a = AdaptiveRAG(tiny_lm, None, Never(), config=LoopConfig(max_steps=4, step_tokens=24, no_repeat_ngram_size=0)).answer("Where is Paris?")
    assert a.stop_reason == "repetition" and len(a.steps) == 1
    assert len(a.steps[0].generation.token_ids) < 24 and a.costs.lm_calls == 1


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
    cfg = dict(max_steps=4, step_tokens=4, sentence_steps=False)
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


@pytest.mark.parametrize("blank", ["", "\n", " \n"])
def test_a_blank_later_step_ends_the_answer_unscored(tiny_lm, bm25, blank):
    """What a base model writes after its answer, before its next "Question:": a blank line in-process, nothing
    at all from a server that drops the line break with the stop string. Either way the answer ends there
    and the trigger is not asked (`always` would otherwise retrieve for an empty step)."""
    from rag.loop.run import QuestionRun

    rag = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(max_steps=3))
    run = QuestionRun(rag.stepper, "what is the capital of france")
    prompt, _ = run.next_step()
    run.take_draft(Generation(text=" Paris", tokens=["ĠParis"], token_ids=[1], logprobs=[-0.1]), prompt)
    assert run.search is not None  # `always` fires on the first step
    run.found(rag.stepper.retrieve(run.search, run.costs))
    run.accept(Generation(text=" Paris", tokens=["ĠParis"], token_ids=[1], logprobs=[-0.1]))
    prompt, _ = run.next_step()
    run.take_draft(Generation(text=blank, tokens=list(blank), token_ids=list(range(len(blank))),
                              logprobs=[-0.01] * len(blank), stop="\nQuestion:"), prompt)
    answer = run.answer()
    assert run.done and answer.stop_reason == "empty step" and [s.text for s in answer.steps] == [" Paris"]
    assert run.search is None and answer.costs.retriever_calls == 1  # the first step's search only
