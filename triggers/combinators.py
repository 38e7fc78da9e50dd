"""Fixed policies and boolean combinations of triggers.

`AnyOf` (``a+b``) / `AllOf` (``a&b``) pass the *same* `StepState` to every member, so a statistic one
member computes (e.g. N samples, a search) is reused by the next. Their score is the max (AnyOf) /
min (AllOf) of the members' scores, which is only meaningful for sweeps when members share a scale;
the members' own signals are kept in ``details``. `Inverted` (``-a``) fires where its member does
not, with the score negated, so "fire when score > cut" still holds: ``token-confidence&-retrieval-top1``
retrieves when the model is unsure *and* the retriever is confident.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from triggers.base import Signal, StepState, Trigger, TriggerConfigError
from triggers.spec import TriggerSpec


@dataclass
class Always:
    """Retrieve for every step (standard RAG); ``before_generation`` also retrieves on the question first."""

    before_generation: bool = False
    name: str = "always"

    def check_question(self, state: StepState) -> Signal | None:
        return Signal(1.0, True) if self.before_generation else None

    def score(self, state: StepState) -> Signal:
        return Signal(score=1.0, fired=True)


@dataclass
class Never:
    """Closed-book: never retrieve."""

    name: str = "never"

    def check_question(self, state: StepState) -> Signal | None:
        return None

    def score(self, state: StepState) -> Signal:
        return Signal(score=0.0, fired=False)


def _combine(members: Sequence[Trigger], signals: list[Signal | None], fired: bool, score: float) -> Signal:
    return Signal(
        score=score,
        fired=fired,
        details={"members": {m.name: (s.to_dict() if s else None) for m, s in zip(members, signals)}},
    )


@dataclass
class AnyOf:
    """Fire when any member fires. Every member is scored (benchmarks want all scores)."""

    members: Sequence[Trigger] = field(default_factory=list)
    name: str = "any-of"

    def __post_init__(self) -> None:
        if not self.members:
            raise TriggerConfigError("AnyOf needs at least one trigger")

    def check_question(self, state: StepState) -> Signal | None:
        sigs = [m.check_question(state) for m in self.members]
        real = [s for s in sigs if s is not None]
        if not real:
            return None
        return _combine(self.members, sigs, any(s.fired for s in real), max(s.score for s in real))

    def score(self, state: StepState) -> Signal:
        sigs = [m.score(state) for m in self.members]
        return _combine(self.members, sigs, any(s.fired for s in sigs), max(s.score for s in sigs))


@dataclass
class AllOf:
    """Fire only when every member fires."""

    members: Sequence[Trigger] = field(default_factory=list)
    name: str = "all-of"

    def __post_init__(self) -> None:
        if not self.members:
            raise TriggerConfigError("AllOf needs at least one trigger")

    def check_question(self, state: StepState) -> Signal | None:
        sigs = [m.check_question(state) for m in self.members]
        if any(s is None for s in sigs):
            return None
        return _combine(self.members, sigs, all(s.fired for s in sigs), min(s.score for s in sigs))

    def score(self, state: StepState) -> Signal:
        sigs = [m.score(state) for m in self.members]
        return _combine(self.members, sigs, all(s.fired for s in sigs), min(s.score for s in sigs))


@dataclass
class Inverted:
    """Fire exactly when ``member`` does not; score = −(member's score)."""

    member: Trigger
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"-{self.member.name}"

    @property
    def threshold(self) -> float | None:
        """The member's threshold: ``-a`` fires where ``a``'s score does not cross it."""
        return getattr(self.member, "threshold", None)

    @staticmethod
    def _invert(sig: Signal) -> Signal:
        return Signal(score=-sig.score, fired=not sig.fired, details={"inverted": sig.to_dict()})

    def check_question(self, state: StepState) -> Signal | None:
        sig = self.member.check_question(state)
        return None if sig is None else self._invert(sig)

    def score(self, state: StepState) -> Signal:
        return self._invert(self.member.score(state))


SPECS = (
    TriggerSpec("always", "free", Always, help="retrieve for every step (standard RAG)"),
    TriggerSpec("never", "free", Never, help="never retrieve (closed-book)"),
)
