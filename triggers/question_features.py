"""Signals from the question alone (AdaRAGUE's follow-up finds question features rival model signals):
question length, question word, and the corpus frequency of the question's entities.

- ``question-length``: score = number of words; fire when longer than θ (long questions tend to be
  compositional). ``details`` also carry the question word (``question_word``: who, what, when,
  where, which, why, how, how many/much, or ``other``), a categorical feature: it has no numeric
  score without a per-word prior learned from data, so it is a feature only, not a trigger.
- ``entity-frequency``: QuCo's pre-generation check as a step signal: score =
  -log(1 + mean frequency per million tokens of the question's entities) in the corpus-statistics
  index (`corpora.statistics`); fire when that frequency is below QuCo's τ.

Both are computed when the step is decided (no LM call, so they cost nothing but the look-up);
the entities are memoised on the step, shared with a `quco` trigger of the same step.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from triggers.base import Signal, StepState, check_threshold
from triggers import quco
from triggers.quco import QuCo
from triggers.spec import TriggerSpec, from_log_count, threshold_setting

QUESTION_WORDS = ("how many", "how much", "who", "whom", "whose", "what", "when", "where", "which", "why", "how")
DEFAULT_LENGTH_THRESHOLD = 12.0  # words; not calibrated


def question_word(question: str) -> str:
    """The first question word of ``question`` ("who", "how many", …), else ``other``."""
    text = " ".join(re.findall(r"[a-z]+", question.lower()))
    hits = [(m.start(), -len(w), w) for w in QUESTION_WORDS if (m := re.search(rf"\b{w}\b", text))]
    return min(hits)[2] if hits else "other"


@dataclass
class QuestionLength:
    threshold: float = DEFAULT_LENGTH_THRESHOLD
    name: str = "question-length"

    def __post_init__(self) -> None:
        self.threshold = check_threshold(self.threshold)

    def check_question(self, state: StepState) -> Signal | None:
        return None  # a step signal, so that benchmarks compare it on the same drafts as the others

    def score(self, state: StepState) -> Signal:
        words = len(state.question.split())
        return Signal(score=float(words), fired=words > self.threshold,
                      details={"words": words, "question_word": question_word(state.question), "threshold": self.threshold})


@dataclass
class EntityFrequency:
    """QuCo's question check (`QuCo.check_question`) read as the step's signal."""

    quco: QuCo
    name: str = "entity-frequency"

    @property
    def threshold(self) -> float:
        return self.quco.question_threshold

    def check_question(self, state: StepState) -> Signal | None:
        return None

    def score(self, state: StepState) -> Signal:
        return self.quco.check_question(state)


def _entity_frequency(threshold: float | None = None, **options: Any) -> EntityFrequency:
    """``threshold`` is QuCo's question threshold: a frequency per million tokens."""
    return EntityFrequency(quco.build_quco(question_threshold=threshold, **options))


SPECS = (
    TriggerSpec("question-length", "free", QuestionLength,
                (threshold_setting(DEFAULT_LENGTH_THRESHOLD, "fire when the question has more words than this"),),
                help="the question's length in words"),
    TriggerSpec("entity-frequency", "index look-up", _entity_frequency, (
        threshold_setting(quco.DEFAULT_QUESTION_THRESHOLD, "fire when the question entities' frequency per million tokens is below this"),
        *quco.INDEX_SETTINGS), help="the corpus frequency of the question's entities (QuCo's question check)",
                extra="quco", runtime=("lm", "tokenizer"), threshold_of=from_log_count),
)
