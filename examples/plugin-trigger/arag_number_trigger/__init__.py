"""Retrieve when the question asks for a number or a date: small models guess figures badly."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from corpora.settings import Setting
from triggers.base import Signal, StepState

CUES = ("how many", "how much", "how old", "how long", "how far", "how tall", "when", "what year",
        "which year", "what date", "in what year", "population", "number of")


@dataclass
class AsksForNumber:
    """the question asks for a number or a date (how many, when, what year...)"""

    COST: ClassVar[str] = "free"
    SETTINGS: ClassVar[tuple[Setting, ...]] = (
        Setting("threshold", float, 0.5, "fire when the score (1 = asks for a number) exceeds this", range=(0.0, 1.0)),
        Setting("cues", str, "", "more cue phrases, comma-separated (e.g. 'what percentage,what time')"),
    )

    threshold: float = 0.5
    cues: str = ""
    name: str = "asks-for-number"

    def check_question(self, state: StepState) -> Signal | None:
        return None  # decided with the step, so a benchmark compares it on the same drafts as the others

    def score(self, state: StepState) -> Signal:
        text = " ".join(re.findall(r"[a-z0-9]+", state.question.lower()))
        cues = CUES + tuple(c.strip().lower() for c in self.cues.split(",") if c.strip())
        hit = next((c for c in cues if re.search(rf"\b{re.escape(c)}\b", text)), None)
        score = 1.0 if hit else 0.0
        return Signal(score, score > self.threshold, {"cue": hit, "threshold": self.threshold})
