"""Cost accounting for cached computations: what each piece cost, so a policy derived from the cache
is charged exactly what it would have cost when run alone.

Shared sampling: triggers share N samples through `StepState.samples`; `LedgerState` remembers what
each draw cost, and charges a trigger for every draw it *used*, even one another trigger paid for.
A search a trigger makes before deciding (`StepState.passages`) is a draw in the same sense.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Iterator

from triggers.base import StepState
from triggers.protocols import TokenStatistics

COST_KEYS = ("lm_calls", "retriever_calls", "prompt_tokens", "generated_tokens", "seconds")


def zero() -> dict[str, float]:
    return dict.fromkeys(COST_KEYS, 0)


def add(*parts: dict[str, float]) -> dict[str, float]:
    out = zero()
    for p in parts:
        for k in COST_KEYS:
            out[k] += p.get(k, 0)
    return out


def sub(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0) - b.get(k, 0) for k in COST_KEYS}


class Meter:
    """The LM usage and seconds spent inside a ``with meter.measure() as cost:`` block."""

    def __init__(self, lm: Any) -> None:
        self.lm = lm

    @contextmanager
    def measure(self, retriever_calls: int = 0) -> Iterator[dict[str, float]]:
        cost = zero()
        before = self.lm.usage.snapshot()
        t0 = time.perf_counter()
        try:
            yield cost
        finally:
            used = self.lm.usage.since(before)
            cost.update(lm_calls=used.calls, prompt_tokens=used.prompt_tokens, generated_tokens=used.generated_tokens,
                        seconds=time.perf_counter() - t0, retriever_calls=retriever_calls)


@dataclass
class LedgerState(StepState):
    """A `StepState` that records the cost of each sample draw and which draws a trigger used."""

    meter: Meter | None = None
    draws: dict[tuple, dict[str, float]] = field(default_factory=dict)
    used: set[tuple] = field(default_factory=set)
    paid: set[tuple] = field(default_factory=set)  # draws whose cost was spent here (not read from ``searches``)
    searches: dict[str, tuple[list, dict[str, float]]] | None = None

    @classmethod
    def of(cls, state: StepState, meter: Meter, searches: dict | None = None) -> "LedgerState":
        """Copy a state built by the loop (``AdaptiveRAG.step_state``), so the benchmark's triggers see
        exactly what the loop's would."""
        return cls(**{f.name: getattr(state, f.name) for f in fields(StepState) if f.init and not f.name.startswith("_")},
                   meter=meter, searches=searches)

    def samples(self, n: int, temperature: float = 1.0, top_p: float = 1.0,
                max_new_tokens: int | None = None) -> list[TokenStatistics]:
        budget = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        calls = self.sample_calls
        assert self.meter is not None
        with self.meter.measure() as cost:
            out = super().samples(n, temperature, top_p, max_new_tokens)
        if self.sample_calls > calls:
            self.draws[(temperature, top_p, budget, n)] = cost
            self.paid.add((temperature, top_p, budget, n))
        self.used.add(min((k for k in self.draws if k[:3] == (temperature, top_p, budget) and k[3] >= n),
                          key=lambda k: k[3]))
        return out

    def passages(self) -> list:
        """The step's search, as `StepState.passages`, with its cost recorded like a sample draw.
        ``searches`` (the runner's per-question search cache, query → (passages, cost)) is read
        first and filled after, so the RAG branch of the same query does not search again."""
        query = self.query or self.question
        key = ("passages", query, self.k)
        if key not in self.draws:
            assert self.meter is not None
            if self.searches is not None and query in self.searches:
                found, cost = self.searches[query]
                self._memo[key] = list(found)
            else:
                with self.meter.measure(retriever_calls=1) as cost:
                    found = super().passages()
                self.paid.add(key)
                if self.searches is not None:
                    self.searches[query] = (found, cost)
            self.draws[key] = cost
        self.used.add(key)
        return super().passages()

    def charge(self, paid_during_call: set[tuple], measured: dict[str, float]) -> dict[str, float]:
        """A trigger's stand-alone cost: what it spent itself (``measured`` minus the draws it made)
        plus every draw it used, whoever paid for it."""
        own = sub(measured, add(*(self.draws[k] for k in paid_during_call)))
        return add(own, *(self.draws[k] for k in self.used))
