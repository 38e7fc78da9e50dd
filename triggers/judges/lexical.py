"""The lexical judge: SQuAD answer normalisation, then equality, containment or token F1.

Sampled answers are often sentences that restate the question ("The capital of France is
Paris."). Tokens that also occur in the question carry no answer, and leaving them in makes
"...is Paris" and "...is Lyon" look alike to token F1; so they are dropped before comparing
(unless that leaves nothing, e.g. a yes/no answer that only repeats the question's words).
"""
from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

from triggers.base import TriggerConfigError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower-case, strip punctuation and articles, collapse whitespace."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def token_f1(a: list[str], b: list[str]) -> float:
    """SQuAD token F1 between two token lists (bag-of-tokens overlap)."""
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def contains(longer: list[str], shorter: list[str]) -> bool:
    """``shorter`` occurs in ``longer`` as a contiguous token run (so "1" is not in "1990")."""
    n = len(shorter)
    return n > 0 and any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


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
