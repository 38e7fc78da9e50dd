"""The lexical judge: SQuAD answer normalisation, then equality, containment or token F1
(`corpora.text`, which the benchmark metrics share).

Sampled answers are often sentences that restate the question ("The capital of France is
Paris."). Tokens that also occur in the question carry no answer, and leaving them in makes
"...is Paris" and "...is Lyon" look alike to token F1; so they are dropped before comparing
(unless that leaves nothing, e.g. a yes/no answer that only repeats the question's words).
"""
from __future__ import annotations

from dataclasses import dataclass

from corpora.text import contains, normalize_answer, token_f1
from triggers.base import TriggerConfigError


@dataclass
class LexicalJudge:
    """Equivalent when the normalised answers are equal, one contains the other (``containment``),
    or their token F1 reaches ``f1_threshold`` (None: F1 not used). The defaults were chosen on the
    dev half of benchmarks/judge_accuracy.py's labelled pairs."""

    containment: bool = True
    f1_threshold: float | None = 0.4
    ignore_question_tokens: bool = True
    name: str = "lexical"

    def __post_init__(self) -> None:
        if self.f1_threshold is not None and not 0.0 < self.f1_threshold <= 1.0:
            raise TriggerConfigError(f"lexical f1_threshold must be in (0, 1], got {self.f1_threshold}")

    def tokens(self, question: str, answer: str) -> list[str]:
        toks = normalize_answer(answer).split()
        if self.ignore_question_tokens and question:
            asked = set(normalize_answer(question).split())
            kept = [t for t in toks if t not in asked]
            return kept or toks
        return toks

    def equivalent(self, question: str, a: str, b: str) -> bool:
        ta, tb = self.tokens(question, a), self.tokens(question, b)
        if ta == tb:
            return True
        if not ta or not tb:
            return False
        if self.containment and (contains(ta, tb) or contains(tb, ta)):
            return True
        return self.f1_threshold is not None and token_f1(ta, tb) >= self.f1_threshold
