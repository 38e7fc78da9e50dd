"""The language-model interface the loop talks to, and the generation record it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union, runtime_checkable


class ModelError(ValueError):
    """The model cannot be loaded (unknown id/path while offline, missing GGUF file)."""


@dataclass(frozen=True)
class Prompt:
    """A chat prompt plus an assistant prefix that generation continues.

    ``messages`` are (role, content) pairs rendered with the model's chat template;
    ``prefix`` is answer text already accepted by the loop (the next step continues it).
    """

    messages: tuple[tuple[str, str], ...]
    prefix: str = ""

    @classmethod
    def user(cls, content: str, prefix: str = "", system: str | None = None) -> "Prompt":
        msgs = ((("system", system),) if system else ()) + (("user", content),)
        return cls(messages=msgs, prefix=prefix)

    def plain_text(self) -> str:
        """The messages as a base model (no chat template) reads them: their contents, a blank line apart.
        The same on every route, so a base model decodes the same text in-process and behind a server."""
        return "\n\n".join(c for _, c in self.messages)


class StopRow(Exception):
    """Raised by an on_text callback to end that row only.

    The row ends at once with ``Generation.stop == CANCELLED`` and the text it had; the other rows of
    the batch go on (a client that disconnected, a streamer that has seen enough). Any other exception
    from the callback propagates out of ``generate`` as usual.
    """


CANCELLED = "cancelled"  # `Generation.stop` of a row whose on_text callback raised `StopRow`

PromptLike = Union[str, Prompt]  # a bare string is one user message


@dataclass
class Generation:
    """One generated sequence. Statistics are of the model's untempered next-token distribution."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    finished: bool = False  # True when the model emitted end-of-sequence
    prompt_tokens: int = 0
    approximate_entropy: bool = False  # True when entropies come from top-k log-probs only (HTTP backends)
    stop: str | None = None  # the stop string that ended generation (excluded from ``text``)
    # per token, the most likely alternatives {token: logprob}; filled only when asked (``top_logprobs=k``)
    top_logprobs: list[dict[str, float]] = field(default_factory=list)

    @property
    def mean_logprob(self) -> float:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else 0.0


@dataclass
class Usage:
    """Cumulative cost counters of a model instance; the loop reports per-answer deltas."""

    calls: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0

    def snapshot(self) -> "Usage":
        return Usage(self.calls, self.prompt_tokens, self.generated_tokens)

    def since(self, before: "Usage") -> "Usage":
        return Usage(self.calls - before.calls, self.prompt_tokens - before.prompt_tokens,
                     self.generated_tokens - before.generated_tokens)


@runtime_checkable
class LanguageModel(Protocol):
    """``generate`` returns, per prompt, ``n`` generations from one batched call; same seed → same output."""

    name: str
    usage: Usage

    def generate(
        self,
        prompts: Sequence[PromptLike],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> list[list[Generation]]: ...

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join token strings from `Generation.tokens` back into text."""
        ...

    def score(self, prompt: PromptLike, continuation: str) -> Generation:
        """Token statistics of ``continuation`` given ``prompt`` (teacher-forced, one forward pass)."""
        ...
