"""P(True) (Kadavath et al., 2022, arXiv:2207.05221): ask the model whether its own draft is true.

LM-Polygraph's ``PTrue`` (IINemo/lm-polygraph, ``src/lm_polygraph/estimators/p_true.py``) prompts
"Question: {q} / Possible answer: {a} / Is the possible answer: (A) True (B) False / The possible
answer is:" and scores -log p("(A)"). Here the options are the words themselves, and the
probability of " True" is normalised against " False" (a small model spreads most of its mass over
other tokens, which says nothing about this choice): P(True) = p(True) / (p(True) + p(False)),
score = 1 - P(True), fire when P(True) < θ.

Cost: one extra forward pass (no tokens generated), through the model's `NextTokenScorer`
(`triggers.protocols`). The in-process model implements it exactly; the OpenAI-compatible backend
reads the first token's top log-probs (a candidate outside them counts as probability 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from triggers.base import Signal, StepState, TriggerConfigError, check_threshold
from triggers.protocols import NextTokenScorer
from triggers.spec import TriggerSpec, complement, threshold_setting

QUESTION = "Question: {question}\nPossible answer: {answer}\nIs the possible answer True or False?"
PREFIX = "The possible answer is:"
CANDIDATES = (" True", " False")
DEFAULT_THRESHOLD = 0.5


def p_true(logprob_true: float, logprob_false: float) -> float:
    """p(True) / (p(True) + p(False)) from two log-probs; 0.5 when both are impossible."""
    if logprob_true == -math.inf and logprob_false == -math.inf:
        return 0.5
    m = max(logprob_true, logprob_false)
    t, f = math.exp(logprob_true - m), math.exp(logprob_false - m)
    return t / (t + f)


@dataclass
class PTrue:
    threshold: float = DEFAULT_THRESHOLD
    name: str = "p-true"

    def __post_init__(self) -> None:
        self.threshold = check_threshold(self.threshold)

    def check_question(self, state: StepState) -> Signal | None:
        return None

    def score(self, state: StepState) -> Signal:
        scorer = state.sampler
        if not isinstance(scorer, NextTokenScorer):
            raise TriggerConfigError("p-true needs a model that scores next tokens (next_token_logprobs)")
        answer = ((state.accepted or "") + (state.draft.text if state.draft is not None else "")).strip()
        lps = scorer.next_token_logprobs(QUESTION.format(question=state.question, answer=answer), PREFIX, CANDIDATES)
        p = p_true(lps[CANDIDATES[0]], lps[CANDIDATES[1]])
        return Signal(score=1.0 - p, fired=p < self.threshold,
                      details={"p_true": p, "logprob_true": lps[CANDIDATES[0]], "logprob_false": lps[CANDIDATES[1]],
                               "threshold": self.threshold})


SPECS = (
    TriggerSpec("p-true", "extra call", PTrue, (threshold_setting(DEFAULT_THRESHOLD, "fire when P(True) of the draft is below this"),),
                help="ask the model whether its own draft is true (one extra forward pass)", threshold_of=complement),
)
