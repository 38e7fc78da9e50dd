"""Batched decoding in the transformers backend (issue 11): many prompts in one batch give what each
gives alone, and every per-row option (stops, step ends, StopRow, repetition controls, seeds) stays
per row. Greedy equality on the real default model; steering on a tiny random model."""
from __future__ import annotations

import pytest
import torch

from rag.models.hf_decode import plan_batches
from rag.models.hf_model import HFLanguageModel
from rag.models.lm import CANCELLED, Generation, Prompt, StopRow
from rag.models.steps import SentenceEnd

PROMPTS = [
    Prompt.user("hi"),
    Prompt.user("Who got the first Nobel Prize in physics?"),
    Prompt.user("Explain in a few sentences why the sky is blue, what Rayleigh scattering is, and why sunsets "
                "are red rather than blue. Keep it simple enough for a child."),
    Prompt.user("What is the capital of France?", prefix="The capital of France"),
]
TOKENS = 16


def _same(a: Generation, b: Generation) -> None:
    """Equal up to float noise: the same tokens and ending; statistics within 1e-4 (padding moves float32 sums)."""
    assert a.token_ids == b.token_ids and a.text == b.text
    assert (a.finished, a.stop, a.prompt_tokens) == (b.finished, b.stop, b.prompt_tokens)
    assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert a.entropies == pytest.approx(b.entropies, abs=1e-4)
    assert len(a.top_logprobs) == len(b.top_logprobs)
    for x, y in zip(a.top_logprobs, b.top_logprobs):
        assert x.keys() == y.keys() and list(x.values()) == pytest.approx(list(y.values()), abs=1e-4)


@pytest.fixture(scope="module")
def batched_greedy(default_lm):
    """The four prompts decoded together (greedy), and the usage that call added."""
    before = default_lm.usage.snapshot()
    out = default_lm.generate(PROMPTS, max_new_tokens=TOKENS)
    return out, default_lm.usage.since(before)


@pytest.mark.slow
def test_batched_greedy_equals_one_by_one_on_the_real_model(default_lm, batched_greedy):
    batched, used = batched_greedy
    lengths = [len(default_lm.encode(default_lm.render(p))) for p in PROMPTS]
    assert len(set(lengths)) == len(PROMPTS), "the prompts must differ in length, so the batch is padded"
    for prompt, gens in zip(PROMPTS, batched):
        _same(gens[0], default_lm.generate([prompt], max_new_tokens=TOKENS)[0][0])
    assert batched[3][0].text.startswith(" is Paris"), "the assistant prefix is continued"
    # each prompt counts as one call with its own (unpadded) prompt tokens, as when decoded one by one
    assert used.calls == len(PROMPTS) and used.prompt_tokens == sum(lengths)
    assert used.generated_tokens == sum(len(g[0].token_ids) for g in batched)


@pytest.mark.slow
def test_a_row_ending_at_a_step_end_leaves_the_other_rows_unchanged(default_lm, batched_greedy):
    full = [g[0] for g in batched_greedy[0]]
    ends = SentenceEnd()
    stepped = [g[0] for g in default_lm.generate(PROMPTS, max_new_tokens=TOKENS, step_end=ends)]
    cut_rows = 0
    for f, s in zip(full, stepped):
        # where the model, checking after every token, first sees a step end in this row's own text
        first = next(((j, c) for j in range(1, len(f.token_ids) + 1)
                      if (c := ends.end(default_lm.tokenizer.decode(f.token_ids[:j]))) is not None), None)
        if first is None:
            _same(s, f)
        else:
            cut_rows += 1
            assert s.text == f.text[:first[1]] and s.token_ids == f.token_ids[:len(s.token_ids)]
    assert 0 < cut_rows < len(PROMPTS), "the prompts must give rows that end early and rows that do not"


@pytest.mark.slow
def test_seeded_samples_of_two_prompts_in_one_batch_are_reproducible(default_lm):
    two = PROMPTS[1:3]
    kw = dict(n=3, temperature=1.0, max_new_tokens=8, seed=11)
    a = default_lm.generate(two, **kw)
    b = default_lm.generate(two, **kw)
    assert [len(g) for g in a] == [3, 3]
    assert [[s.token_ids for s in g] for g in a] == [[s.token_ids for s in g] for g in b]
    assert len({s.text for g in a for s in g}) > 2, "temperature 1.0 should give varied samples"
    # each prompt draws from its own seeded generator: its samples do not depend on its batch mates
    alone = default_lm.generate(two[1:], **kw)[0]
    assert [s.token_ids for s in alone] == [s.token_ids for s in a[1]]


@pytest.fixture(scope="module")
def tiny(default_lm):
    """A 2-layer random Llama with the default tokenizer, fast enough to decode many rows; its weights
    (seed 1, init 0.05) make some rows fall into loops and others not, so per-row controls show."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=len(default_lm.tokenizer), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=2048, initializer_range=0.05)
    return HFLanguageModel(LlamaForCausalLM(cfg), default_lm.tokenizer, name="tiny-random")


def _one_by_one(lm, prompts, **kw) -> list[list[Generation]]:
    return [lm.generate([p], **kw)[0] for p in prompts]


@pytest.mark.parametrize("options", [
    dict(),
    dict(top_logprobs=3),
    pytest.param(dict(repetition_penalty=1.5, no_repeat_ngram_size=2), marks=pytest.mark.slow),  # over 10 s
    dict(stop_loops=True),
], ids=["greedy", "top-logprobs", "repetition-controls", "stop-loops"])
def test_every_option_applies_per_row(tiny, options):
    kw = dict(max_new_tokens=24, **options)
    batched = tiny.generate(PROMPTS, **kw)
    for got, want in zip(batched, _one_by_one(tiny, PROMPTS, **kw)):
        _same(got[0], want[0])


def test_the_random_model_repeats_in_some_rows_only(tiny):
    """The premise of the per-row test above: the controls act on some rows and not on others."""
    plain = [g[0] for g in tiny.generate(PROMPTS, max_new_tokens=24)]
    controlled = [g[0] for g in tiny.generate(PROMPTS, max_new_tokens=24, no_repeat_ngram_size=2)]
    changed = [p.token_ids != c.token_ids for p, c in zip(plain, controlled)]
    assert any(changed) and not all(changed)
    looped = [g[0].stop == "repetition" for g in tiny.generate(PROMPTS, max_new_tokens=24, stop_loops=True)]
    assert any(looped) and not all(looped)


def test_a_stop_string_ends_only_its_row(tiny):
    full = [g[0] for g in tiny.generate(PROMPTS, max_new_tokens=24)]
    stop = tiny.tokenizer.decode(full[1].token_ids[3:5])  # two tokens in the middle of row 1's text
    assert stop.strip() and all(stop not in f.text for i, f in enumerate(full) if i != 1)
    stopped = [g[0] for g in tiny.generate(PROMPTS, max_new_tokens=24, stop=[stop])]
    assert stopped[1].stop == stop and stopped[1].text == full[1].text[:full[1].text.index(stop)]
    for i in (0, 2, 3):
        _same(stopped[i], full[i])


def test_stop_row_ends_only_the_row_whose_callback_raised_it(tiny):
    two, n = [PROMPTS[1], PROMPTS[0]], 2  # the longer first: the batch reorders them, the row numbers must not
    full = tiny.generate(two, n=n, max_new_tokens=12)
    seen: dict[int, int] = {}
    texts: dict[int, str] = {}

    def on_text(row: int, text: str) -> None:
        seen[row] = seen.get(row, 0) + 1
        texts[row] = text
        if row == 2 and seen[row] == 3:  # prompt 1, sample 0: after its third token
            raise StopRow

    cut = tiny.generate(two, n=n, max_new_tokens=12, on_text=on_text)
    assert set(seen) == {0, 1, 2, 3}, "every row (i * n + j) reports its text"
    assert all(full[row // n][row % n].text.startswith(texts[row].rstrip("\ufffd")) for row in (0, 1, 3))
    cancelled = cut[1][0]
    assert cancelled.stop == CANCELLED and not cancelled.finished
    assert cancelled.token_ids == full[1][0].token_ids[:3]
    for i, j in ((0, 0), (0, 1), (1, 1)):
        _same(cut[i][j], full[i][j])


def test_any_other_callback_error_propagates(tiny):
    def on_text(row: int, text: str) -> None:
        raise KeyError("client bug")

    with pytest.raises(KeyError):
        tiny.generate(PROMPTS[:2], max_new_tokens=4, on_text=on_text)


def test_max_batch_tokens_splits_a_call_into_sub_batches_with_the_same_result(tiny):
    lengths = [len(tiny.encode(tiny.render(p))) for p in PROMPTS]
    kw = dict(n=2, max_new_tokens=12)
    # the cap fits the two shortest prompts together (similar lengths share a batch), the others alone
    short = sorted(lengths)[:2]
    cap = 2 * 2 * (short[1] + 12)
    assert plan_batches(lengths, 2, 12, cap) == [[lengths.index(short[0]), lengths.index(short[1])],
                                                 [lengths.index(sorted(lengths)[2])], [lengths.index(max(lengths))]]
    small = HFLanguageModel(tiny.model, tiny.tokenizer, name="tiny-small-batches", max_batch_tokens=cap)
    prefills: list[int] = []
    hook = tiny.model.register_forward_pre_hook(
        lambda _m, _a, kwargs: prefills.append(kwargs["input_ids"].shape[0]) if kwargs.get("cache") is None else None,
        with_kwargs=True)
    try:
        split = small.generate(PROMPTS, **kw)
        assert sorted(prefills) == [1, 1, 2], "three sub-batches, each with one prefill"
        prefills.clear()
        whole = tiny.generate(PROMPTS, **kw)
        assert prefills == [len(PROMPTS)], "under the default cap the call is one batch"
    finally:
        hook.remove()
    for a, b in zip(split, whole):
        for x, y in zip(a, b):
            _same(x, y)
    assert small.usage.calls == len(PROMPTS) and small.usage.prompt_tokens == sum(lengths)
