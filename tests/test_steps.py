"""Step boundaries, streaming hold-back, token bytes and repetition cuts (issue 15), then multi-step
answers on the real default model: a list kept whole, and FLARE's retrieval on a later step."""
from __future__ import annotations

import functools

import pytest

from rag.loop import AdaptiveRAG, LoopConfig
from rag.loop.prompts import PromptTemplates
from rag.loop.streaming import StepStream
from rag.models.hf_decode import Row
from rag.models.lm import Prompt
from rag.models.steps import SentenceEnd, held_by_stops, loop_end, loops
from rag.models.tokens import TokenBytes
from retrievers import build_retriever
from triggers import Never
from triggers.base import Signal, StepState


@pytest.mark.parametrize("text,step", [
    ("Paris is big. The", "Paris is big."),
    ("The U.S. Army won the war. It", "The U.S. Army won the war."),
    ("Dr. Smith came home. He", "Dr. Smith came home."),
    ("John A. Smith was born in 1990. He", "John A. Smith was born in 1990."),
    ("Washington D.C. is a city. It", "Washington D.C. is a city."),
    ("Fruits: 1. Banana\n2. Apple", "Fruits: 1. Banana"),
    ("1. Paris\n2", "1. Paris"),
    ("Is it? Yes", "Is it?"),
])
def test_sentence_end_knows_abbreviations_initials_and_list_markers(text, step):
    end = SentenceEnd().end(text)
    assert end is not None and text[:end] == step
    # streaming never runs past a step end: what any earlier prefix lets through stops before it
    assert all(SentenceEnd().safe(text[:j]) <= end for j in range(len(text)) if SentenceEnd().end(text[:j]) is None)


@pytest.mark.parametrize("text", ["The U.S. Army", "Dr. Smith", "John A. Smith", "1. Paris", "Paris is big.",
                                  "Paris is big. ", "Paris\n", "Fruits: 1. Banana"])
def test_no_step_end_before_the_next_step_begins(text):
    assert SentenceEnd().end(text) is None


def test_step_stream_holds_back_what_a_later_token_can_cut():
    sent: list[str] = []
    s = StepStream(sent.append, stops=[". "])
    for text in ["Washington", "Washington D", "Washington D.", "Washington D.C", "Washington D.C."]:
        s.on_text(0, text)
        assert not "".join(sent).endswith(".")  # "." could begin the stop ". "
    s.finish("Washington D.C")  # the model then produced " i": the stop ". " ended the text
    assert "".join(sent) == "Washington D.C"
    sent.clear()
    s = StepStream(sent.append, step_end=SentenceEnd())
    for text in ["Paris", "Paris is", "Paris is big", "Paris is big."]:
        s.on_text(0, text)
    s.finish("Paris is big.")
    assert "".join(sent) == "Paris is big."
    assert held_by_stops("abc,", [","]) == 0 and held_by_stops("ab\n", ["\n\n"]) == 1


@pytest.mark.slow
def test_token_bytes_are_the_real_bytes_and_steps_keep_whole_characters(default_lm):
    tok = default_lm.tokenizer
    ids = default_lm.encode("Hi 😀 日本")
    tokens = tok.convert_ids_to_tokens(ids)
    tb = TokenBytes(tok)
    assert b"".join(tb(t) for t in tokens) == "Hi 😀 日本".encode()
    assert any(tb(t) and not _decodes(tb(t)) for t in tokens)  # a token holding half a character
    # a step cut by its token budget inside "😀" ends before the emoji, without "\ufffd"
    cut = next(j for j in range(1, len(ids)) if "\ufffd" in tok.decode(ids[:j]))
    g = default_lm._finish(Row(0, 0, [], ids=ids[:cut], logprobs=[-0.1] * cut, entropies=[0.1] * cut), 0)
    assert g.text == "Hi" and "\ufffd" not in g.text and len(g.token_ids) == len(default_lm.encode("Hi"))


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_a_degenerate_loop_is_found_where_it_becomes_one():
    assert not loops([1, 2, 3, 4, 5]) and not loops([7, 7, 7])  # "very very very" is not a loop yet
    assert loops([9, 7, 8, 7, 8, 7, 8, 7, 8])  # "7 8" four times (8 tokens)
    assert loop_end([9, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]) == 10  # "1 2 3" a third time
    assert loop_end([1, 2, 3]) is None


# -- real default model ---------------------------------------------------------------------------
LIST_TEMPLATES = PromptTemplates(closed_book="{question}\n\nAnswer with a numbered list, one item per line.")


@pytest.mark.slow
def test_a_list_answer_keeps_all_its_lines(default_lm):
    rag = AdaptiveRAG(default_lm, None, Never(), templates=LIST_TEMPLATES,
                      config=LoopConfig(max_steps=5, step_tokens=24))
    a = rag.answer("Name three large cities in France.")
    lines = [line for line in a.text.splitlines() if line.strip()]
    assert len(lines) >= 3, a.text
    assert a.text == "".join(s.text for s in a.steps).strip()
    assert all(s.text.strip() for s in a.steps) and a.stop_reason != "empty step"


class FireOnSecondStep:
    """A trigger that fires on the second step only: a fixed decision, so the test is about the loop."""

    name = "second-step"

    def score(self, state: StepState) -> Signal:
        return Signal(float(state.step_index == 1), state.step_index == 1)

    def check_question(self, state: StepState) -> None:
        return None


@pytest.mark.slow
def test_retrieval_on_a_later_step_regenerates_it_with_passages_and_keeps_them(default_lm, demo_docs):
    prompts: list[Prompt] = []
    lm = _Recording(default_lm, prompts)
    rag = AdaptiveRAG(lm, build_retriever("bm25", demo_docs, progress=False), FireOnSecondStep(),
                      config=LoopConfig(max_steps=3, step_tokens=32))
    a = rag.answer("Write a long paragraph about the city of Paris, its history and its monuments.")
    assert len(a.steps) >= 2 and not a.steps[0].fired and a.steps[1].fired and a.steps[1].passages
    passages = a.steps[1].passages
    in_prompt = lambda p: all(x.text.split()[0] in p.messages[-1][1] for x in passages)  # noqa: E731
    before = [p for p in prompts if not in_prompt(p)]
    after = [p for p in prompts if in_prompt(p)]
    assert len(before) == 2  # the first step's draft and the second step's draft: closed book
    assert after and after[0].prefix == a.steps[0].text  # the regenerated second step continues the first
    assert all(in_prompt(p) for p in prompts[prompts.index(after[0]):])  # later steps keep the passages
    assert len(prompts) == len(a.steps) + 1
    assert a.steps[1].text == a.steps[1].generation.text and a.text.startswith(a.steps[0].text.strip())


class _Recording:
    """The real model, with every prompt it is asked to continue recorded."""

    def __init__(self, lm, prompts: list) -> None:
        self.lm, self.prompts = lm, prompts

        @functools.wraps(lm.generate)
        def generate(prompts, *args, **kwargs):
            self.prompts.extend(prompts)
            return self.lm.generate(prompts, *args, **kwargs)

        self.generate = generate

    def __getattr__(self, name):
        return getattr(self.lm, name)
