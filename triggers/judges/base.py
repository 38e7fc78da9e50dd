"""What every equivalence judge is: the `EquivalenceJudge` protocol, the directional
`EntailmentJudge` and its three-way `Implication` verdicts, and `EitherJudge`, which combines judges.

The judges (one module each beside this one) and the clustering import these; `triggers.equivalence`
builds judges by name. Keeping the protocol here, below both, is what lets the factory import the
judges without the judges importing the factory.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol, runtime_checkable

from triggers.base import TriggerConfigError


class Implication(IntEnum):
    """Three-way NLI verdict, numbered as jlko's ``check_implication`` returns it."""

    CONTRADICTION = 0
    NEUTRAL = 1
    ENTAILMENT = 2


@runtime_checkable
class EquivalenceJudge(Protocol):
    """``equivalent(question, a, b)``. A judge may also define ``prepare(question, answers)``, called
    once per step with all distinct answers before any comparison (the embedding judge batches
    its encoding there)."""

    name: str

    def equivalent(self, question: str, a: str, b: str) -> bool: ...


@runtime_checkable
class EntailmentJudge(EquivalenceJudge, Protocol):
    """A judge with directional three-way verdicts (NLI), so both clustering variants apply."""

    def implications(self, question: str, a: str, b: str) -> tuple[Implication, Implication]:
        """``(a ⇒ b, b ⇒ a)``: does ``b`` follow from ``a``, and ``a`` from ``b``."""
        ...


@dataclass
class EitherJudge:
    """Equivalent when any member says so; members are asked in order, so put the cheap one first."""

    members: tuple[EquivalenceJudge, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not self.members:
            raise TriggerConfigError("a combined judge needs at least one member")
        self.name = self.name or "+".join(m.name for m in self.members)

    def prepare(self, question: str, answers: list[str]) -> None:
        for m in self.members:
            prepare = getattr(m, "prepare", None)
            if prepare is not None:
                prepare(question, answers)

    def equivalent(self, question: str, a: str, b: str) -> bool:
        return any(m.equivalent(question, a, b) for m in self.members)
