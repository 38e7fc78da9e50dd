"""Greedy clustering of sampled answers by bidirectional entailment (jlko's ``get_semantic_ids``).

Each answer, in sample order, joins the first cluster whose *representative* (its first member)
it is equivalent to, else founds a new cluster. Comparing with representatives only costs
O(N · clusters) judge calls instead of jlko's O(N²); identical strings never reach the judge
(Kuhn et al. de-duplicate the same way), and each unordered pair is judged at most once.

Variants, for judges with directional three-way verdicts (NLI):
- ``strict`` (Farquhar et al.'s default): a ⇒ b and b ⇒ a are both entailment.
- ``non-contradiction`` (jlko's ``strict_entailment=False``): neither direction is a contradiction
  and not both are neutral, so entailment one way and neutral the other counts as the same meaning,
  while neutral both ways (two answers that merely do not clash) does not.
Judges that only say equivalent / not (lexical, embedding, lm) give the same clusters under both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from triggers.base import StepState, TriggerConfigError
from triggers.judges.base import EntailmentJudge, EquivalenceJudge, Implication

VARIANTS = ("strict", "non-contradiction")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise TriggerConfigError(f"unknown clustering variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return variant


def bidirectional(forward: Implication, backward: Implication, variant: str) -> bool:
    """Same meaning, given the verdicts a ⇒ b and b ⇒ a."""
    if variant == "strict":
        return forward == Implication.ENTAILMENT and backward == Implication.ENTAILMENT
    pair = (forward, backward)
    return Implication.CONTRADICTION not in pair and pair != (Implication.NEUTRAL, Implication.NEUTRAL)


@dataclass
class PairJudgments:
    """The judge's verdicts for one question, cached per unordered pair; ``calls`` counts the pairs judged."""

    judge: EquivalenceJudge
    question: str = ""
    variant: str = "strict"
    calls: int = 0
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        check_variant(self.variant)

    def same(self, a: str, b: str) -> bool:
        if a == b:
            return True
        key = (a, b) if a < b else (b, a)
        if key not in self._verdicts:
            self.calls += 1
            self._verdicts[key] = self._judge(*key)
        return self._verdicts[key]

    def _judge(self, a: str, b: str) -> bool:
        if isinstance(self.judge, EntailmentJudge):
            return bidirectional(*self.judge.implications(self.question, a, b), self.variant)
        return bool(self.judge.equivalent(self.question, a, b))


def shared_judgments(state: StepState, judge: EquivalenceJudge, variant: str) -> PairJudgments:
    """The step's verdict cache for this judge and variant, shared by every trigger of the step
    (semantic entropy's clustering and the similarity-matrix signals never judge a pair twice).
    Judges are told apart by name: the registry builds judges of one name from one spec."""
    return state.memo(("pair-judgments", judge.name, variant, state.question),
                      lambda: PairJudgments(judge, state.question, variant))


@dataclass
class Clustering:
    semantic_ids: list[int]  # cluster of each answer, numbered in order of first appearance
    representatives: list[str]  # first member of each cluster
    judge_calls: int  # distinct unordered pairs the judge was asked about

    @property
    def sizes(self) -> list[int]:
        return [self.semantic_ids.count(c) for c in range(len(self.representatives))]


def assign(text: str, representatives: Sequence[str], judgments: PairJudgments) -> int | None:
    """Index of the first cluster whose representative ``text`` means the same as, else None."""
    return next((c for c, rep in enumerate(representatives) if judgments.same(rep, text)), None)


def get_semantic_ids(strings: Sequence[str], judgments: PairJudgments) -> Clustering:
    """Cluster ``strings`` greedily (see the module docstring); never compares two members of one cluster."""
    prepare = getattr(judgments.judge, "prepare", None)
    if prepare is not None:
        prepare(judgments.question, list(dict.fromkeys(strings)))
    seen: dict[str, int] = {}
    representatives: list[str] = []
    ids: list[int] = []
    for s in strings:
        cid = seen.get(s)
        if cid is None:
            cid = assign(s, representatives, judgments)
            if cid is None:
                cid = len(representatives)
                representatives.append(s)
            seen[s] = cid
        ids.append(cid)
    return Clustering(semantic_ids=ids, representatives=representatives, judge_calls=judgments.calls)
