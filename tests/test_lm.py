"""The transformers backend: token statistics, batched sampling, determinism (real default model)."""
from __future__ import annotations

import math

import pytest
import torch

from rag.models.hf_decode import Row
from rag.models.lm import Prompt

pytestmark = pytest.mark.slow  # every test here runs the real default model

QUESTION = Prompt.user("What is the capital of France?")


def test_logprobs_match_a_separate_forward_pass(default_lm):
    g = default_lm.generate([QUESTION], max_new_tokens=12)[0][0]
    assert g.token_ids, "the model generated nothing"
    prompt_ids = default_lm.encode(default_lm.render(QUESTION))
    with torch.inference_mode():
        logits = default_lm.model(input_ids=torch.tensor([prompt_ids + g.token_ids])).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    expected = logp.gather(1, torch.tensor(g.token_ids)[:, None])[:, 0].tolist()
    assert g.logprobs == pytest.approx(expected, abs=1e-4)


def test_entropies_are_within_zero_and_log_vocab(default_lm):
    g = default_lm.generate([QUESTION], n=3, temperature=1.0, max_new_tokens=10, seed=3)[0]
    bound = math.log(default_lm.vocab_size)
    for seq in g:
        assert len(seq.entropies) == len(seq.logprobs) == len(seq.token_ids)
        assert all(0.0 <= h <= bound + 1e-6 for h in seq.entropies)
        assert all(lp <= 0.0 for lp in seq.logprobs)


def test_n_samples_come_from_one_call_and_a_seed_repeats_them(default_lm):
    calls = default_lm.usage.calls
    a = default_lm.generate([QUESTION], n=5, temperature=1.0, max_new_tokens=12, seed=7)[0]
    assert default_lm.usage.calls == calls + 1
    b = default_lm.generate([QUESTION], n=5, temperature=1.0, max_new_tokens=12, seed=7)[0]
    assert len(a) == 5
    assert [s.text for s in a] == [s.text for s in b]
    assert len({s.text for s in a}) > 1, "temperature 1.0 should give varied samples"


def test_greedy_first_sample_equals_plain_greedy(default_lm):
    one = default_lm.generate([QUESTION], max_new_tokens=10)[0][0]
    batch = default_lm.generate([QUESTION], n=3, temperature=0.0, max_new_tokens=10)[0]
    assert all(s.text == one.text for s in batch)


def test_stop_string_is_cut_and_token_stats_follow(default_lm):
    ids = default_lm.encode("Paris is big. The end")
    row = Row(0, 0, [], ids=ids, logprobs=[-0.1] * len(ids), entropies=[0.5] * len(ids), ended=(12, ". "))
    g = default_lm._finish(row, 0)
    assert g.text == "Paris is big" and g.stop == ". "
    assert len(g.token_ids) == len(default_lm.encode("Paris is big"))


def test_score_gives_teacher_forced_statistics(default_lm):
    s = default_lm.score(QUESTION, "Paris")
    assert s.token_ids == default_lm.encode("Paris")
    assert all(lp <= 0 for lp in s.logprobs)
