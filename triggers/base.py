"""The trigger protocol, the signal it returns, and the per-step state that triggers share.

A trigger returns a score *and* a decision: benchmarks sweep the score, the loop acts on the
decision. Costly statistics (N samples, entities) live on the `StepState` and are computed at most
once per step, whichever trigger asks first (LM-Polygraph's "declared statistics, computed once").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

from triggers.protocols import Sampler, ScoredPassage, Searcher, TokenStatistics

T = TypeVar("T")


class TriggerConfigError(ValueError):
    """A trigger was configured with a bad value (non-finite threshold, unknown name)."""


def check_threshold(value: float, name: str = "threshold") -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TriggerConfigError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(x):
        raise TriggerConfigError(f"{name} must be a finite number, got {value!r}")
    return x


@dataclass(frozen=True)
class Signal:
    """``score``: higher means "more likely the model does not know"; ``fired``: the decision."""

    score: float
    fired: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "fired": self.fired, "details": self.details}


@dataclass
class StepState:
    """Everything a trigger may read about the step being decided.

    ``draft`` is None for the check before the first step (question only). ``sampler`` and
    ``prompt`` let a trigger draw more samples of *this* step; ``samples()`` memoises them so two
    triggers never pay twice. ``retriever`` and ``query`` (what the loop retrieves with if the step
    fires) let a trigger look at the search first; ``passages()`` memoises it, and the loop reuses
    those passages when the step fires instead of searching twice.
    """

    question: str
    accepted: str = ""
    draft: TokenStatistics | None = None
    step_index: int = 0
    sampler: Sampler | None = None
    prompt: Any = None
    max_new_tokens: int = 64
    stop: Sequence[str] | None = None
    seed: int | None = None
    # further keyword arguments of the sampler's ``generate`` that the loop uses for its steps (where the
    # step ends, repetition controls), so that samples of a step are decoded like the step itself
    options: dict[str, Any] = field(default_factory=dict)
    sample_calls: int = 0  # batched sampling calls made for this step (a cost, and a test hook)
    retriever: Searcher | None = None
    query: str | None = None
    k: int = 3
    retriever_calls: int = 0  # searches made by triggers for this step (a cost the loop charges)
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """Return the statistic under ``key``, computing it on first use only."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def samples(self, n: int, temperature: float = 1.0, top_p: float = 1.0,
                max_new_tokens: int | None = None) -> list[TokenStatistics]:
        """N sampled versions of this step from one batched call, shared between triggers.

        ``max_new_tokens`` defaults to the step's budget. A request for fewer samples than already
        drawn at the same settings reuses a prefix.
        """
        if self.sampler is None or self.prompt is None:
            raise TriggerConfigError("this trigger needs samples, but the step carries no sampler/prompt")
        budget = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        key_base = ("samples", temperature, top_p, budget)
        for k, v in self._memo.items():
            if isinstance(k, tuple) and k[:4] == key_base and k[4] >= n:
                return v[:n]

        def draw() -> list[TokenStatistics]:
            self.sample_calls += 1
            return self.sampler.generate(
                [self.prompt], n=n, temperature=temperature, top_p=top_p,
                max_new_tokens=budget, stop=self.stop, seed=self.seed, **self.options,
            )[0]

        return self.memo(key_base + (n,), draw)


    def passages(self) -> list[ScoredPassage]:
        """The top-``k`` passages for ``query`` (the question when the loop gave none), searched once per step."""
        if self.retriever is None:
            raise TriggerConfigError("this trigger needs a retriever, but the step carries none")
        query = self.query or self.question

        def search() -> list[ScoredPassage]:
            self.retriever_calls += 1
            return list(self.retriever.retrieve(query, self.k))

        return self.memo(("passages", query, self.k), search)

    def searched(self) -> list[ScoredPassage] | None:
        """The passages a trigger already searched for ``query``, or None (nothing searched)."""
        return self._memo.get(("passages", self.query or self.question, self.k))


@runtime_checkable
class Trigger(Protocol):
    """A retrieval policy. ``score`` decides a drafted step; ``check_question`` (optional: return
    None to abstain) decides before any drafting, on the question alone. A trigger that reads the
    draft's most likely alternatives per token sets ``draft_top_logprobs`` (how many; see
    `draft_top_logprobs`), and the loop asks the model for them."""

    name: str

    def score(self, state: StepState) -> Signal: ...

    def check_question(self, state: StepState) -> Signal | None: ...


def draft_top_logprobs(trigger: Any) -> int:
    """How many alternatives per draft token ``trigger``, or any trigger inside it (a combination's
    members, a cascade's, a learned model's), reads: what the loop must ask the model to keep."""
    members = getattr(trigger, "members", ())
    inner = [getattr(trigger, a, None) for a in ("member", "cheap", "costly")]
    inner += list(members.values() if isinstance(members, Mapping) else members)
    return max([int(getattr(trigger, "draft_top_logprobs", 0)), *(draft_top_logprobs(t) for t in inner if t is not None)])
