"""Token-confidence triggers: free, because the statistics come from the draft's own forward pass.

Aggregations (all turned into "higher = less confident" scores so every trigger sweeps the same way):
- ``min_prob``:  score = 1 - min_t p_t            fire when min_t p_t < θ       (θ is a probability)
- ``mean_logprob``: score = -mean_t log p_t        fire when mean log p_t < θ    (θ is a log-probability)
- ``max_entropy``: score = max_t H_t               fire when max_t H_t > θ       (θ in nats)
- ``flare``: FLARE (Jiang et al., 2023): fire if *any* token has p_t < θ; score is the number
  of such tokens (a count, so a sweep over θ is a sweep over the same statistic as ``min_prob``).
- ``sequence_prob``: LM-Polygraph's ``MaximumSequenceProbability``: score = -Σ_t log p_t (the
  greedy sequence's negative log-likelihood), fire when it exceeds θ (nats).
- ``mean_entropy``: LM-Polygraph's ``MeanTokenEntropy``: score = mean_t H_t, fire when > θ (nats).
LM-Polygraph's ``Perplexity`` is -mean_t log p_t, i.e. exactly ``mean_logprob``'s score; the
registry's ``perplexity`` name is that aggregation (IINemo/lm-polygraph,
``src/lm_polygraph/estimators/{max_probability,perplexity,token_entropy}.py``).

Why aggregations of one trigger rather than separate trigger classes: every one of them reads the
same per-token statistics of the draft and differs only in the reduction, so one class keeps the
"no draft → maximally unsure" rule and the details format in one place; the registry exposes
``msp``, ``perplexity`` and ``mean-entropy`` as trigger names (an aggregation under its own name),
so `arag bench` can sweep them side by side as separate policies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from corpora.settings import Setting
from triggers.base import Signal, StepState, TriggerConfigError, check_threshold
from triggers.spec import TriggerSpec, complement, negated, same, threshold_setting

AGGREGATIONS = ("min_prob", "mean_logprob", "max_entropy", "flare", "sequence_prob", "mean_entropy")
# Defaults fire on about half of the default model's closed-book drafts: the median score on the
# calibration half (even positions) of `arag bench --dataset nq_open_oracle --limit 200`; the held-out
# half retrieved for 50 % of its questions at each of them (docs/triggers/token-confidence.md). A starting point
# only: `arag calibrate` picks a threshold for your model, data and retrieval budget.
DEFAULT_THRESHOLDS = {"min_prob": 0.1, "mean_logprob": -0.82, "max_entropy": 5.2, "flare": 0.1,
                      # not calibrated (docs/triggers/token-confidence.md): sequence NLL of 5 nats, mean entropy of 2 nats
                      "sequence_prob": 5.0, "mean_entropy": 2.0}
# per aggregation, its threshold for a cut on its score (flare's score is a count: no threshold in score units)
AGGREGATION_THRESHOLDS = {"min_prob": complement, "mean_logprob": negated, "max_entropy": same,
                          "sequence_prob": same, "mean_entropy": same}


@dataclass
class TokenConfidence:
    aggregation: str = "min_prob"
    threshold: float | None = None
    name: str = "token-confidence"

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise TriggerConfigError(f"unknown aggregation {self.aggregation!r}; choose from {', '.join(AGGREGATIONS)}")
        self.threshold = check_threshold(
            DEFAULT_THRESHOLDS[self.aggregation] if self.threshold is None else self.threshold
        )

    def check_question(self, state: StepState) -> Signal | None:
        return None  # needs a draft

    def score(self, state: StepState) -> Signal:
        draft = state.draft
        if draft is None or not draft.logprobs:
            # Nothing generated: no evidence of confidence, so treat as maximally unsure.
            return Signal(score=math.inf, fired=True, details={"aggregation": self.aggregation, "tokens": 0})
        lps = draft.logprobs
        theta = self.threshold
        agg = self.aggregation
        if agg == "min_prob":
            p = math.exp(min(lps))
            score, fired = 1.0 - p, p < theta
            stat = {"min_prob": p}
        elif agg == "mean_logprob":
            m = sum(lps) / len(lps)
            score, fired = -m, m < theta
            stat = {"mean_logprob": m}
        elif agg == "max_entropy":
            h = max(draft.entropies)
            score, fired = h, h > theta
            stat = {"max_entropy": h}
        elif agg == "sequence_prob":
            nll = -sum(lps)
            score, fired = nll, nll > theta
            stat = {"sequence_logprob": -nll}
        elif agg == "mean_entropy":
            h = sum(draft.entropies) / len(draft.entropies)
            score, fired = h, h > theta
            stat = {"mean_entropy": h}
        else:  # flare
            low = sum(1 for lp in lps if math.exp(lp) < theta)
            score, fired = float(low), low > 0
            stat = {"low_tokens": low}
        return Signal(score=score, fired=fired, details={"aggregation": agg, "threshold": theta, "tokens": len(lps), **stat})


def _aggregation(aggregation: str, name: str, help: str) -> TriggerSpec:
    """One aggregation under its own trigger name (its own bench column and config table)."""
    def build(threshold: float | None = None) -> TokenConfidence:
        return TokenConfidence(aggregation=aggregation, threshold=threshold, name=name)

    return TriggerSpec(name, "free", build, (threshold_setting(DEFAULT_THRESHOLDS[aggregation], help),),
                       help=f"token-confidence's {aggregation} aggregation under its own name",
                       threshold_of=AGGREGATION_THRESHOLDS[aggregation])


SPECS = (
    TriggerSpec("token-confidence", "free", TokenConfidence, (
        threshold_setting(None, "fire below this (min_prob: a probability, default 0.1; other aggregations: see the docs)"),
        Setting("aggregation", str, "min_prob", "how the draft's token statistics are reduced to one score", choices=AGGREGATIONS),
    ), help="the draft's own token probabilities or entropies; no extra call"),
    _aggregation("sequence_prob", "msp", "fire when the draft's negative log-likelihood (nats) exceeds this"),
    _aggregation("mean_logprob", "perplexity", "fire when the draft's mean token log-probability is below this"),
    _aggregation("mean_entropy", "mean-entropy", "fire when the draft's mean token entropy (nats) exceeds this"),
)
