"""Answer text as tokens: SQuAD's answer normalisation, token F1 and token-run containment.

One definition for the whole project, at the lowest layer that uses it: the lexical equivalence
judge (`triggers.judges.lexical`) compares sampled answers with it, and the benchmark metrics
(`benchmarks.metrics`) score answers against references with it, so "the same answer" means the
same thing to a trigger and to its evaluation.
"""
from __future__ import annotations

import re
import string
from collections import Counter

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
