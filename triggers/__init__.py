"""Retrieval triggers: one protocol (`Trigger.score(state) -> Signal`), many policies."""
from triggers.base import Signal, StepState, Trigger, TriggerConfigError
from triggers.combinators import AllOf, Always, AnyOf, Inverted, Never
from triggers.protocols import Sampler, TokenStatistics
from triggers.token_confidence import TokenConfidence

__all__ = [
    "AllOf", "Always", "AnyOf", "Inverted", "Never", "Sampler", "Signal", "StepState", "TokenConfidence",
    "TokenStatistics", "Trigger", "TriggerConfigError",
]
