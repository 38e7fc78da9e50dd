"""Signals from a search made before deciding: a BM25 or FAISS query costs ~1 ms against ~1 s for an
LM call, so looking at what the retriever would return is a cheap way to decide whether to use it.

Measures (all "higher = less sure"; the threshold is in the measure's own units):
- ``top1``: score = -(top-1 retrieval score); fire when the top score < θ. A corpus with a strong
  match for the question and draft is one where retrieval has something to add… or the model
  already knows; which way it points for a given model is what `arag bench` measures.
- ``gap``: score = -(top-1 score - top-2 score); fire when the gap < θ (no passage stands out).
- ``support``: whether the top passages support the draft: 1 when a passage contains the draft's
  answer tokens as a contiguous run (SQuAD-normalised, the question's own tokens dropped, as the
  lexical judge does), else the largest fraction of those tokens found in one passage; score =
  1 - support, fire when support < θ (the draft is not backed by the corpus).

Scores are on the retriever's scale (BM25 is unbounded, FAISS cosine in [-1, 1]), so ``top1``/``gap``
thresholds are per retriever and corpus: `arag calibrate` picks them.

The search is the step's `StepState.passages()` with the query the loop would retrieve with when
the step fires (FLARE's masked question + draft), so a fired step reuses these passages and the
search is paid once; the loop counts it as a retriever call whether or not the step fires.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corpora.text import contains, normalize_answer
from triggers.base import Signal, StepState, TriggerConfigError, check_threshold
from triggers.judges.lexical import LexicalJudge
from triggers.spec import TriggerSpec, complement, negated, threshold_setting

# measure → (trigger name, default threshold). Not calibrated: BM25 scores on the demo corpus.
MEASURES = {"top1": ("retrieval-top1", 10.0), "gap": ("retrieval-gap", 1.0), "support": ("retrieval-support", 1.0)}


def support(question: str, answer: str, passages: list[str]) -> float:
    """How well the best passage backs ``answer`` (module docstring); 0 for no answer tokens or passages."""
    want = LexicalJudge().tokens(question, answer)
    if not want or not passages:
        return 0.0
    best = 0.0
    for text in passages:
        have = normalize_answer(text).split()
        if contains(have, want):
            return 1.0
        vocab = set(have)
        best = max(best, sum(t in vocab for t in want) / len(want))
    return best


@dataclass
class RetrievalEvidence:
    measure: str = "top1"
    threshold: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise TriggerConfigError(f"unknown measure {self.measure!r}; choose from {', '.join(MEASURES)}")
        self.name = self.name or MEASURES[self.measure][0]
        self.threshold = check_threshold(MEASURES[self.measure][1] if self.threshold is None else self.threshold)

    def check_question(self, state: StepState) -> Signal | None:
        return None  # decided on the draft's search; the question alone would be QuCo's kind of check

    def score(self, state: StepState) -> Signal:
        found = state.passages()
        scores = sorted((float(p.score) for p in found), reverse=True)
        details: dict[str, Any] = {"measure": self.measure, "threshold": self.threshold, "query": state.query,
                                   "passage_ids": [p.id for p in found], "scores": scores}
        if self.measure == "support":
            draft = state.draft.text if state.draft is not None else ""
            value = support(state.question, draft, [p.text for p in found])
        elif not scores:  # nothing found: no evidence at all
            value = float("-inf")
        elif self.measure == "top1":
            value = scores[0]
        else:
            value = scores[0] - scores[1] if len(scores) > 1 else scores[0]
        details[self.measure] = value
        return Signal(score=-value if self.measure != "support" else 1.0 - value, fired=value < self.threshold,
                      details=details)


def _measure(measure: str, what: str, help: str) -> TriggerSpec:
    name, default = MEASURES[measure]
    threshold_of = complement if measure == "support" else negated

    def build(threshold: float | None = None) -> RetrievalEvidence:
        return RetrievalEvidence(measure=measure, threshold=threshold)

    return TriggerSpec(name, "retriever call", build, (threshold_setting(default, help),),
                       help=f"a search before deciding: {what}", threshold_of=threshold_of)


SPECS = (
    _measure("top1", "the top passage's score", "fire when the top-1 retrieval score is below this (the retriever's scale)"),
    _measure("gap", "how far the top passage stands out", "fire when the gap between the top-1 and top-2 scores is below this"),
    _measure("support", "whether the top passages contain the draft's answer",
             "fire when the top passages' support for the draft is below this"),
)
