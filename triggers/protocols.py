"""What triggers need from a language model, declared here so `triggers/` never imports `rag/`.

`rag`'s model satisfies these structurally: a trigger that wants samples or a score asks for them
through these protocols, and the loop hands in the real model.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable


@runtime_checkable
class TokenStatistics(Protocol):
    """One generated sequence with per-token statistics of the model's (untempered) next-token distribution."""

    text: str
    token_ids: list[int]
    logprobs: list[float]  # log p(chosen token | prefix)
    entropies: list[float]  # entropy of the full next-token distribution, nats
    finished: bool  # ended with end-of-sequence (not by a stop string or the token budget)


@runtime_checkable
class Sampler(Protocol):
    """Draws ``n`` sequences per prompt from one batched call. ``prompts`` are opaque to triggers:
    a trigger only hands back the prompt the loop gave it, or a plain user-message string."""

    def generate(
        self,
        prompts: Sequence[Any],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> list[list[TokenStatistics]]: ...


@runtime_checkable
class ScoredPassage(Protocol):
    """What a trigger reads of a retrieved passage (`retrievers.base.Passage` satisfies it)."""

    id: str
    text: str
    score: float


@runtime_checkable
class Searcher(Protocol):
    """A retriever, as a trigger that decides from a search (top score, support of the draft) needs it."""

    def retrieve(self, query: str, k: int) -> Sequence[ScoredPassage]: ...


@runtime_checkable
class NextTokenScorer(Protocol):
    """Log-probabilities of candidate next tokens after a user message and the start of the
    assistant's reply (``prefix``), from one forward pass (P(True)).

    ``candidates`` are short strings (" True", " False"); each is scored by its first token. A
    backend that sees only the top-k alternatives returns -inf for a candidate outside them."""

    def next_token_logprobs(self, user: str, prefix: str, candidates: Sequence[str]) -> dict[str, float]: ...
