"""What every answer carries: the per-step trace and the cost count."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from corpora.jsonfloat import json_text  # noqa: F401  (re-exported: `arag ask --json` and the server write answers with it)
from rag.models.lm import Generation
from retrievers.base import Passage
from triggers.base import Signal


@dataclass
class Costs:
    lm_calls: int = 0
    retriever_calls: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepTrace:
    """One step: the greedy draft, the trigger's signal, and what happened when it fired."""

    index: int
    draft: str
    signal: Signal | None
    fired: bool
    query: str | None = None
    passages: list[Passage] = field(default_factory=list)
    text: str = ""  # the accepted text of this step (the regenerated one when retrieval fired)
    draft_tokens: list[dict[str, Any]] = field(default_factory=list)  # token, logprob, entropy
    generation: Generation | None = field(default=None, repr=False)  # the accepted step's generation (not in to_dict)
    # the relevance gate's verdict on the step's search: threshold, relevance per passage id, kept ids,
    # nothing_relevant (then ``passages`` is empty and the draft stood); None without a gate
    gate: dict[str, Any] | None = None

    @property
    def nothing_relevant(self) -> bool:
        """Retrieved, and the relevance gate kept none of it."""
        return bool(self.gate and self.gate["nothing_relevant"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "draft": self.draft,
            "score": self.signal.score if self.signal else None,
            "fired": self.fired,
            "signal": self.signal.to_dict() if self.signal else None,
            "query": self.query,
            "passage_ids": [p.id for p in self.passages],
            "text": self.text,
            "draft_tokens": self.draft_tokens,
            "gate": self.gate,
        }


@dataclass
class Answer:
    question: str
    text: str
    steps: list[StepTrace]
    costs: Costs
    pre_check: Signal | None = None  # the question-only check before the first step
    pre_retrieval: list[Passage] = field(default_factory=list)
    trigger: str = ""
    stop_reason: str = ""
    stop_string: str | None = None  # the caller's stop string that ended the answer (stop_reason "stop string")
    pre_gate: dict[str, Any] | None = None  # the relevance gate's verdict on the question check's search
    backend: dict[str, Any] | None = None  # an HTTP model's server capabilities (rag/models/http_capabilities.py)

    @property
    def nothing_relevant(self) -> bool:
        """Some search found nothing relevant (the relevance gate dropped all it returned)."""
        return bool(self.pre_gate and self.pre_gate["nothing_relevant"]) or any(s.nothing_relevant for s in self.steps)

    @property
    def abstained(self) -> bool:
        return self.stop_reason == "abstained"

    @property
    def fired(self) -> bool:
        """Whether the trigger fired at all (before drafting or on a step), retrieved or not."""
        return any(s.fired for s in self.steps) or bool(self.pre_check and self.pre_check.fired)

    @property
    def retrieved(self) -> bool:
        return bool(self.pre_retrieval) or any(s.passages for s in self.steps)

    @property
    def sources(self) -> list[Passage]:
        seen: dict[str, Passage] = {p.id: p for p in self.pre_retrieval}
        for s in self.steps:
            for p in s.passages:
                seen.setdefault(p.id, p)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "retrieved": self.retrieved,
            "nothing_relevant": self.nothing_relevant,
            "abstained": self.abstained,
            "trigger": self.trigger,
            "pre_check": self.pre_check.to_dict() if self.pre_check else None,
            "pre_retrieval_passage_ids": [p.id for p in self.pre_retrieval],
            "pre_gate": self.pre_gate,
            "steps": [s.to_dict() for s in self.steps],
            "sources": [{"id": p.id, "title": p.title, "score": p.score} for p in self.sources],
            "costs": self.costs.to_dict(),
            "stop_reason": self.stop_reason,
            "stop_string": self.stop_string,
            **({"backend": self.backend} if self.backend is not None else {}),
        }
