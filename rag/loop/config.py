"""The loop's settings (`LoopConfig`): what one answer may spend and how its steps are generated.

Its own module because every part of the loop reads it (the stepper, a question's run, the drivers)
while none of them may import the loop's facade, `rag.loop.adaptive`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from rag.errors import UsageError
from retrievers.base import check_k
from retrievers.relevance import check_gate_threshold

# Defaults of the repetition controls, chosen on the default model (SmolLM2-135M-Instruct): with passages
# in the prompt it looped ("Paris, the City of the City of …") without them; no_repeat_ngram_size=3 gave
# the cleanest text, repetition_penalty=1.2 pushed it off the passages' facts. See docs/concepts.md
# "Repetition". 1.0 / 0 switch them off.
REPETITION_PENALTY = 1.0
NO_REPEAT_NGRAM_SIZE = 3


@dataclass
class LoopConfig:
    k: int = 3  # passages per retrieval
    max_steps: int = 6  # steps (sentences or lines) per answer
    max_retrievals: int = 3  # retrieval budget per answer (pre-generation check included)
    step_tokens: int = 48  # token budget of one step
    mask_below: float = 0.4  # FLARE: draft tokens below this probability are left out of the query
    seed: int | None = 0  # for triggers that sample, and for drafts when temperature > 0
    sentence_steps: bool = True  # a step ends at a sentence boundary or a line break (rag/models/steps.py)
    stops: Sequence[str] = ()  # extra stop strings that end a step (excluded from the text)
    top_logprobs: int = 0  # > 0: keep the k most likely tokens per position (models that support it)
    repetition_penalty: float = REPETITION_PENALTY  # transformers' RepetitionPenaltyLogitsProcessor; 1.0 = off
    no_repeat_ngram_size: int = NO_REPEAT_NGRAM_SIZE  # transformers' NoRepeatNGramLogitsProcessor; 0 = off
    # what a caller (an OpenAI request) asks of the returned answer: a token budget over all accepted
    # steps, stop strings that end the answer (excluded from it), and sampling for drafts and regenerations
    answer_tokens: int | None = None
    answer_stops: Sequence[str] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    # drop retrieved passages whose relevance to the question (retrievers/relevance.py) is below this;
    # with none left the step keeps its draft. None = off. ``abstain``: then answer ABSTENTION instead
    relevance_gate: float | None = None
    abstain: bool = False

    def __post_init__(self) -> None:
        check_k(self.k)
        if self.relevance_gate is not None:
            self.relevance_gate = check_gate_threshold(self.relevance_gate)
        if self.abstain and self.relevance_gate is None:
            raise UsageError("abstain needs the relevance gate (it abstains when the gate finds nothing relevant)")
        for name in ("max_steps", "step_tokens"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retrievals < 0:
            raise UsageError(f"max_retrievals must be >= 0, got {self.max_retrievals}")
        if self.answer_tokens is not None and self.answer_tokens < 1:
            raise UsageError(f"answer_tokens must be >= 1, got {self.answer_tokens}")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise UsageError(f"repetition_penalty must be a positive number, got {self.repetition_penalty}")
        if self.no_repeat_ngram_size < 0:
            raise UsageError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
