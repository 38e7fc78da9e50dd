"""A cost-aware cascade: a cheap signal decides where it is sure, a costly one only where it is not.

``cascade:CHEAP,COSTLY`` with a band ``[band_lo, band_hi]`` on CHEAP's score:
- CHEAP's score below ``band_lo``: do not retrieve; score −inf;
- above ``band_hi``: retrieve; score +inf;
- inside the band (edges included; a NaN score counts as inside): COSTLY is computed and decides;
  score = COSTLY's score, fired = COSTLY's decision.

So the score lives on COSTLY's scale, and "fire when score > cut" for a cut on that scale is exactly
the cascade with COSTLY's threshold at the cut: a benchmark sweep of the cascade sweeps COSTLY
inside a fixed band. ``details`` record which trigger decided (``decided_by``) and both signals.
COSTLY is not touched outside the band, so its samples or calls are never paid there (the step
state's memo shares anything CHEAP computed with COSTLY inside it). `arag calibrate --trigger
cascade:CHEAP,COSTLY` picks the band (`benchmarks/cascade_band.py`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from triggers.base import Signal, StepState, Trigger, TriggerConfigError, check_threshold


@dataclass
class Cascade:
    cheap: Trigger
    costly: Trigger
    band_lo: float
    band_hi: float
    name: str = "cascade"

    def __post_init__(self) -> None:
        self.band_lo = check_threshold(self.band_lo, "band_lo")
        self.band_hi = check_threshold(self.band_hi, "band_hi")
        if self.band_lo > self.band_hi:
            raise TriggerConfigError(f"band_lo ({self.band_lo}) exceeds band_hi ({self.band_hi})")

    def check_question(self, state: StepState) -> Signal | None:
        return self.cheap.check_question(state)  # a question check is CHEAP's by construction (no draft yet)

    def score(self, state: StepState) -> Signal:
        cheap = self.cheap.score(state)
        details = {"band": [self.band_lo, self.band_hi], "cheap": {"name": self.cheap.name, **cheap.to_dict()}}
        s = float(cheap.score)
        if s < self.band_lo or s > self.band_hi:
            fired = s > self.band_hi
            return Signal(math.inf if fired else -math.inf, fired, {"decided_by": self.cheap.name, **details})
        costly = self.costly.score(state)
        return Signal(costly.score, costly.fired,
                      {"decided_by": self.costly.name, **details, "costly": {"name": self.costly.name, **costly.to_dict()}})
