"""The margin trigger (TARG): a built-in added as one file plus one registry line. Its score is
1 - min over the draft's tokens of (p_top1 - p_top2), read from the draft's top log-probs, which the
loop keeps because the trigger asks for them."""
from __future__ import annotations

import math

import pytest

from rag.loop import AdaptiveRAG, LoopConfig
from triggers import AnyOf, Never, StepState
from triggers.base import draft_top_logprobs
from triggers.margin import Margin, gaps
from triggers.registry import BUILTINS, build_trigger, get_spec

QUESTION = "What is the capital of Australia?"


def test_margin_is_declared_once_and_builds_by_name():
    assert BUILTINS["margin"] == "triggers.margin"
    spec = get_spec("margin")
    assert spec.cost == "free" and [s.name for s in spec.settings] == ["threshold"]
    assert build_trigger("margin", threshold=0.3).threshold == 0.3
    assert draft_top_logprobs(build_trigger("msp+-margin")) == 2  # through a combination and an inversion


def test_calibration_sweeps_only_the_declared_range():
    """A gap is a probability difference: a threshold outside [0, 1] is refused wherever it comes from,
    and calibration never proposes one (its sweep keeps the cuts the declaration allows)."""
    from benchmarks.calibration import declared, pick_cut
    from triggers import TriggerConfigError

    with pytest.raises(TriggerConfigError, match="threshold"):
        build_trigger("margin", threshold=1.5)
    allowed = declared("margin", {})
    assert allowed(0.4) and not allowed(-0.5)  # cut 0.4 → threshold 0.6; cut -0.5 → 1.5
    none = {"text": "no", "costs": {}}
    records = [{"id": str(i), "answers": ["x"], "closed_book": none, "rag": {"text": "x", "passage_ids": ["p"], "costs": {}},
                "signals": {"margin": {"score": s, "fired": False, "costs": {}}}} for i, s in enumerate((0.1, 0.5, 0.9))]
    unbounded, _ = pick_cut(records, "margin", "contains", None)  # retrieval helps everywhere: fire on all
    assert unbounded < 0.1 and not allowed(unbounded)  # below every score: threshold above 1
    bounded, _ = pick_cut(records, "margin", "contains", None, allowed)
    assert allowed(bounded) and bounded == pytest.approx(0.3)


def test_gaps_and_score_on_given_statistics():
    assert gaps([{"a": math.log(0.6), "b": math.log(0.3)}, {"a": 0.0}]) == pytest.approx([0.3, 1.0])

    class Draft:
        top_logprobs = [{"a": math.log(0.5), "b": math.log(0.45)}]

    sig = Margin(threshold=0.1).score(StepState(QUESTION, draft=Draft()))
    assert sig.score == pytest.approx(0.95) and sig.fired
    assert Margin().score(StepState(QUESTION)).fired  # no draft: maximally unsure


@pytest.mark.slow
def test_margin_score_on_the_default_models_draft(default_lm):
    """The loop drafts with two alternatives per token for margin, none for a trigger that reads none."""
    loop = AdaptiveRAG(default_lm, None, AnyOf([Never(), build_trigger("margin")]), config=LoopConfig(max_steps=1))
    prompt = loop.step_prompt(QUESTION)
    draft = loop.draft([prompt])[0]
    assert draft.top_logprobs and len(draft.top_logprobs) == len(draft.logprobs)
    assert all(1 <= len(top) <= 2 for top in draft.top_logprobs)
    def gap(top: dict[str, float]) -> float:
        p = sorted((math.exp(lp) for lp in top.values()), reverse=True) + [0.0]
        return p[0] - p[1]

    expected = 1.0 - min(gap(top) for top in draft.top_logprobs)
    sig = Margin().score(StepState(QUESTION, draft=draft))
    assert sig.score == pytest.approx(expected) and 0.0 <= sig.score <= 1.0
    plain = AdaptiveRAG(default_lm, None, Never(), config=LoopConfig(max_steps=1)).draft([prompt])[0]
    assert plain.top_logprobs == [] and plain.text == draft.text  # asking for alternatives changes no token
