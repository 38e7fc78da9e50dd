"""Margin (TARG, Wang et al., 2024): the gap between the top-1 and top-2 token probabilities of the draft.

A confident model puts much more mass on its chosen token than on the runner-up; a small gap at any
token means the model nearly said something else there. Per token t of the draft, with p1_t and
p2_t the two largest next-token probabilities: score = 1 - min_t (p1_t - p2_t) ("higher = less
confident", as every trigger's score), fire when the smallest gap is below θ, i.e. score > 1 - θ.

Free: the two alternatives come with the draft's own forward pass; the trigger sets
``draft_top_logprobs = 2`` so the loop asks the model to keep them (`triggers.base.draft_top_logprobs`).
A position with one alternative only (a backend that returned fewer) has p2 = 0.

The default threshold, 0.0057, fires on about half of the default model's drafts: the median gap on
the calibration half (even positions) of `arag bench --dataset nq_open_oracle --limit 100 --policies
never,always,token-confidence,msp,margin` (the held-out half retrieves for 34 % of its questions;
docs/triggers/token-confidence.md, "Margin"). The minimum over a sentence's tokens is small for a
135M model (one near-tie is enough); a larger model, or `arag calibrate --trigger margin`, wants its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from triggers.base import Signal, StepState, check_threshold
from corpora.settings import Setting
from triggers.spec import TriggerSpec, complement

DEFAULT_THRESHOLD = 0.0057  # the median gap on a calibration half (module docstring)


def gaps(top_logprobs: list[dict[str, float]]) -> list[float]:
    """p1 - p2 per position, from each position's most likely tokens and their log-probs."""
    out = []
    for top in top_logprobs:
        probs = sorted((math.exp(lp) for lp in top.values()), reverse=True) + [0.0, 0.0]
        out.append(probs[0] - probs[1])
    return out


@dataclass
class Margin:
    threshold: float = DEFAULT_THRESHOLD
    name: str = "margin"
    draft_top_logprobs: ClassVar[int] = 2  # the loop keeps this many alternatives per draft token

    def __post_init__(self) -> None:
        self.threshold = check_threshold(self.threshold)

    def check_question(self, state: StepState) -> Signal | None:
        return None  # needs a draft

    def score(self, state: StepState) -> Signal:
        tops = getattr(state.draft, "top_logprobs", None) or []
        if not tops:  # no draft, or a model that keeps no alternatives: no evidence of confidence
            return Signal(math.inf, True, {"tokens": 0, "threshold": self.threshold})
        gap = min(gaps(tops))
        return Signal(1.0 - gap, gap < self.threshold, {"min_gap": gap, "tokens": len(tops), "threshold": self.threshold})


SPECS = (
    TriggerSpec("margin", "free", Margin,
                (Setting("threshold", float, DEFAULT_THRESHOLD, "fire when the smallest top-1/top-2 probability gap is below this",
                         range=(0.0, 1.0)),),
                help="the smallest gap between the draft's top-1 and top-2 token probabilities (TARG)",
                threshold_of=complement),
)
