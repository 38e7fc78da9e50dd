"""The cascade trigger (issue 12 part 4): CHEAP decides outside its band, COSTLY only inside, with the
real default model; the registry, the config file, the benchmark ledger and the band calibration."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rag.config import ConfigError, load_config, write_trigger_settings
from rag.loop import AdaptiveRAG
from triggers.registry import build_trigger, split_names
from triggers import TriggerConfigError
from triggers.cascade import Cascade

QUESTION = "who got the first nobel prize in physics"
NAME = "cascade:msp,semantic-entropy"
COSTLY = {"samples": 3, "judge": "lexical"}


def _state(lm, question=QUESTION):
    loop = AdaptiveRAG(lm, None, build_trigger("never"))
    prompt = loop.step_prompt(question)
    return loop.step_state(question, "", loop.draft([prompt])[0], 0, prompt)


def _cascade(lo: float, hi: float, lm) -> Cascade:
    return build_trigger(NAME, lm=lm, band_lo=lo, band_hi=hi, **COSTLY)


@pytest.mark.slow
def test_costly_is_called_only_inside_the_band(default_lm):
    msp = build_trigger("msp").score(_state(default_lm)).score
    for lo, hi, decided, fired in ((msp + 1, msp + 2, "msp", False), (msp - 2, msp - 1, "msp", True)):
        state = _state(default_lm)
        before = default_lm.usage.snapshot()
        sig = _cascade(lo, hi, default_lm).score(state)
        assert default_lm.usage.since(before).calls == 0 and state.sample_calls == 0  # COSTLY never ran
        assert sig.details["decided_by"] == decided and sig.fired == fired
        assert sig.score == (math.inf if fired else -math.inf) and "costly" not in sig.details
    state = _state(default_lm)
    before = default_lm.usage.snapshot()
    sig = _cascade(msp - 1, msp + 1, default_lm).score(state)
    assert default_lm.usage.since(before).calls == 1 and state.sample_calls == 1  # one batched draw of the samples
    assert sig.details["decided_by"] == "semantic-entropy"
    alone = build_trigger("semantic-entropy", **COSTLY).score(state)  # same samples, memoised on the step
    assert sig.score == pytest.approx(alone.score) and sig.fired == alone.fired
    assert sig.details["cheap"]["score"] == pytest.approx(msp)


def test_registry_and_config_know_the_parametrised_names(tmp_path):
    assert split_names("never,cascade:msp,perplexity,p-true") == ["never", "cascade:msp,perplexity", "p-true"]
    cfg = tmp_path / "arag.toml"
    write_trigger_settings(cfg, "cascade:msp,perplexity", {"band_lo": 1.5, "band_hi": 4.0})
    write_trigger_settings(cfg, "msp", {"threshold": 3.0})
    per = load_config(str(cfg))["triggers"]
    trig = build_trigger("cascade:msp,perplexity", per_trigger=per, config_file=str(cfg))
    assert (trig.band_lo, trig.band_hi, trig.cheap.threshold) == (1.5, 4.0, 3.0)  # members keep their own tables
    cfg.write_text('[triggers."cascade:msp,perplexity"]\nband_low = 1.0\n')
    with pytest.raises(ConfigError, match="did you mean 'band_lo'"):
        load_config(str(cfg))
    cfg.write_text('[triggers."learned:m.json"]\nthreshold = "high"\n')
    with pytest.raises(ConfigError, match="threshold must be a finite number"):
        load_config(str(cfg))


@pytest.mark.parametrize("name, options, message", [
    ("cascade:msp", {}, "cascade:CHEAP,COSTLY (two trigger names)"),
    ("cascade:msp,nope", {"band_lo": 0, "band_hi": 1}, "unknown trigger 'nope'"),
    ("cascade:msp,perplexity", {}, "needs a band"),
    ("cascade:msp,perplexity", {"band_lo": 2, "band_hi": 1}, "band_lo (2.0) exceeds band_hi (1.0)"),
    ("cascade:msp,perplexity", {"band_lo": 0, "band_hi": 1, "threshold": 0.5}, "--threshold is ambiguous"),
])
def test_bad_cascades_are_one_line(name, options, message):
    with pytest.raises(TriggerConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_trigger(name, **options)


@pytest.mark.slow
def test_the_bench_ledger_charges_costly_only_where_it_was_computed(default_lm, demo_docs):
    """Scored next to semantic entropy on one step state: the cascade is charged the shared samples
    inside its band (whoever drew them) and nothing outside it."""
    from benchmarks.datasets import QAExample
    from benchmarks.policies import outcome
    from benchmarks.runner import QuestionRunner
    from retrievers import build_retriever

    bm25 = build_retriever("bm25", demo_docs, progress=False)
    msp = build_trigger("msp").score(_state(default_lm)).score
    ex = QAExample("0", QUESTION, ("Wilhelm Conrad Röntgen",))
    from rag.loop import LoopConfig

    config = LoopConfig(max_steps=1)
    # inside the band in both orders (the samples are shared, whoever drew them); outside it once
    for lo, hi, inside, order in ((msp - 1, msp + 1, True, "cascade first"), (msp - 1, msp + 1, True, "semantic entropy first"),
                                  (msp + 1, msp + 2, False, "semantic entropy first")):
        pair = {NAME: _cascade(lo, hi, default_lm), "semantic-entropy": build_trigger("semantic-entropy", **COSTLY)}
        triggers = pair if order == "cascade first" else dict(reversed(list(pair.items())))
        rec = QuestionRunner(default_lm, bm25, triggers, config).run(ex)
        casc = rec["signals"][NAME]
        assert rec["signals"]["semantic-entropy"]["costs"]["lm_calls"] == 1
        assert casc["costs"]["lm_calls"] == (1 if inside else 0), (inside, order)
        assert casc["details"]["decided_by"] == ("semantic-entropy" if inside else "msp")
        assert outcome(rec, NAME).costs["lm_calls"] == 1 + casc["costs"]["lm_calls"] + (1 if casc["fired"] else 0)


def test_band_choice_respects_the_share_and_maximises_gain():
    """On hand-made records: CHEAP is right about the extremes, COSTLY orders the middle; the band that
    computes COSTLY for half the questions sits on the middle."""
    from benchmarks.cascade_band import choose_band, composite
    from benchmarks.costs import zero

    n = 8
    cheap = np.array([0, 1, 2, 3, 4, 5, 6, 7], dtype=float)
    costly = np.array([9, 9, 0, 5, 1, 6, 0, 0], dtype=float)
    helps = [False, False, False, True, False, True, True, True]
    records = [{"id": str(i), "answers": ["x"], "closed_book": {"text": "no", "costs": zero()},
                "rag": {"text": "x" if helps[i] else "no", "passage_ids": ["p"], "costs": zero()},
                "signals": {"c": {"score": cheap[i], "fired": False, "costs": zero()},
                            "k": {"score": costly[i], "fired": False, "costs": zero()}}} for i in range(n)]
    quality = lambda r, text: float(text == "x")  # noqa: E731
    band = choose_band(records, "c", "k", quality, share=0.5)
    # the oracle's order with the fewest COSTLY calls: CHEAP fires on 5, 6, 7; COSTLY ranks 3 above 4; 0, 1, 2 never
    assert (band["band_lo"], band["band_hi"], band["costly_share"]) == (2.5, 4.5, 0.25) and band["gain"] == pytest.approx(1.0)
    s = composite(cheap, costly, band["band_lo"], band["band_hi"])
    assert np.isinf(s[cheap > band["band_hi"]]).all() and (s[cheap > band["band_hi"]] > 0).all()
    assert choose_band(records, "c", "k", quality, share=0.0)["costly_share"] == 0.0
