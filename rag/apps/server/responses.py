"""Response bodies in OpenAI's shapes, built from the service's `Result`.

The service returns generations and plain fields; the shape a client expects (a chat message or a
completion text, log-probs as ``content`` entries or the legacy parallel lists, chunks for
streaming) is decided here, once per endpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rag.loop.trace import Answer
from rag.models.lm import Generation
from rag.models.http_capabilities import ARAG_OWNER as OWNER
from rag.models.tokens import TokenBytes


@dataclass
class Choice:
    """One returned completion: its text, why it ended, and the generations its tokens came from."""

    index: int
    text: str
    finish_reason: str
    stop_reason: str | None
    generations: list[Generation]


@dataclass
class Result:
    """What the service computed: choices, OpenAI usage (``completion_tokens``: the tokens of the
    returned text; all model work is in the trace's ``costs``), and the ``arag`` trace (a list of
    traces for a completions request with several prompts)."""

    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int
    trace: dict[str, Any] | list[dict[str, Any]]


class TokenText:
    """Token strings as OpenAI returns them: the text of each token and its real bytes (a token that
    holds half of a multi-byte character has exact ``bytes`` and a text with "\ufffd")."""

    def __init__(self, tokenizer) -> None:
        self.token_bytes = TokenBytes(tokenizer)

    def __call__(self, token: str) -> tuple[str, list[int]]:
        raw = self.token_bytes(token)
        return raw.decode("utf-8", errors="replace"), list(raw)


def logprobs_content(generations: list[Generation], text_of: TokenText, top: int) -> list[dict[str, Any]]:
    """OpenAI's ``logprobs.content`` for the tokens of some generations (``id``: our extension)."""
    out = []
    for g in generations:
        for j, (tok, lp) in enumerate(zip(g.tokens, g.logprobs)):
            text, raw = text_of(tok)
            entry: dict[str, Any] = {"token": text, "logprob": lp, "bytes": raw, "top_logprobs": []}
            if j < len(g.token_ids):
                entry["id"] = g.token_ids[j]
            if top and j < len(g.top_logprobs):
                for alt, alp in list(g.top_logprobs[j].items())[:top]:
                    at, ab = text_of(alt)
                    entry["top_logprobs"].append({"token": at, "logprob": alp, "bytes": ab})
            out.append(entry)
    return out


def answer_trace(answer: Answer) -> dict[str, Any]:
    """The ``arag`` field: whether retrieval fired, the trigger score, the sources and the costs."""
    d = answer.to_dict()
    for s in d["steps"]:
        s.pop("draft_tokens", None)  # per-token tables are what `logprobs` is for
    scores = [s.signal.score for s in answer.steps if s.signal is not None]
    if answer.pre_check is not None:
        scores.append(answer.pre_check.score)
    finite = [x for x in scores if math.isfinite(x)]
    return {"mode": "adaptive", "fired": answer.fired, "score": max(finite) if finite else (math.inf if scores else None),
            **d, "score_is_max_over_steps": True}


def usage(result: Result) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


class Shape:
    """How one endpoint writes a `Result`: the whole body, or stream chunks (opening chunks, one chunk
    per piece of text, one closing chunk per choice with its finish reason, log-probs and trace)."""

    body_object = chunk_object = ""

    def __init__(self, meta: dict[str, Any], text_of: TokenText) -> None:
        self.meta, self.text_of = meta, text_of

    # what differs between endpoints
    def _logprobs(self, c: Choice) -> dict[str, Any] | None: ...
    def _content(self, c: Choice) -> dict[str, Any]: ...
    def _delta(self, text: str | None) -> dict[str, Any]: ...

    def _trace(self, result: Result, index: int) -> dict[str, Any] | list[dict[str, Any]]:
        return result.trace

    def opening(self, n: int) -> list[dict[str, Any]]:
        return []

    def body(self, result: Result) -> dict[str, Any]:
        return {**self.meta, "object": self.body_object, "system_fingerprint": OWNER,
                "choices": [{"index": c.index, **self._content(c), "logprobs": self._logprobs(c),
                             "finish_reason": c.finish_reason, "stop_reason": c.stop_reason} for c in result.choices],
                "usage": usage(result), "arag": result.trace}

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**self.meta, "object": self.chunk_object, "system_fingerprint": OWNER, "choices": choices, **extra}

    def piece(self, index: int, text: str) -> dict[str, Any]:
        return self.chunk([{"index": index, **self._delta(text), "logprobs": None, "finish_reason": None}])

    def closing(self, result: Result) -> list[dict[str, Any]]:
        """One chunk per choice with its finish reason; the choice's log-probs travel with it."""
        return [self.chunk([{"index": c.index, **self._delta(None), "logprobs": self._logprobs(c),
                             "finish_reason": c.finish_reason, "stop_reason": c.stop_reason}],
                           arag=self._trace(result, c.index)) for c in result.choices]

    def usage_chunk(self, result: Result) -> dict[str, Any]:
        return self.chunk([], usage=usage(result))


class ChatShape(Shape):
    """`/v1/chat/completions`: messages, ``logprobs.content``, ``chat.completion.chunk``."""

    body_object, chunk_object = "chat.completion", "chat.completion.chunk"

    def __init__(self, meta: dict[str, Any], text_of: TokenText, logprobs: bool, top_logprobs: int) -> None:
        super().__init__(meta, text_of)
        self.logprobs, self.top = logprobs, top_logprobs

    def _logprobs(self, c: Choice) -> dict[str, Any] | None:
        return {"content": logprobs_content(c.generations, self.text_of, self.top)} if self.logprobs else None

    def _content(self, c: Choice) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": c.text}}

    def _delta(self, text: str | None) -> dict[str, Any]:
        return {"delta": {} if text is None else {"content": text}}

    def opening(self, n: int) -> list[dict[str, Any]]:
        return [self.chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                             "finish_reason": None} for i in range(n)])]


def legacy_logprobs(generations: list[Generation], text_of: TokenText, top: int) -> dict[str, Any]:
    """The completions endpoint's log-probs: parallel lists, each position's ``top_logprobs`` holding the
    chosen token and up to ``top`` alternatives (as OpenAI: "up to logprobs+1 elements")."""
    tokens: list[str] = []
    token_logprobs: list[float] = []
    tops: list[dict[str, float]] = []
    offsets: list[int] = []
    pos = 0
    for g in generations:
        for j, (tok, lp) in enumerate(zip(g.tokens, g.logprobs)):
            text = text_of(tok)[0]
            alts = list(g.top_logprobs[j].items())[:top] if j < len(g.top_logprobs) else []
            tokens.append(text)
            token_logprobs.append(lp)
            tops.append({text: lp, **{text_of(a)[0]: alp for a, alp in alts}})
            offsets.append(pos)
            pos += len(text)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops, "text_offset": offsets}


class CompletionShape(Shape):
    """`/v1/completions`: ``text`` choices, legacy log-probs, ``echo``; with several prompts, choice
    ``i`` answers prompt ``i // n`` and ``arag`` is the list of the prompts' traces."""

    body_object = chunk_object = "text_completion"

    def __init__(self, meta: dict[str, Any], text_of: TokenText, logprobs: int | None, prompts: list[str],
                 n: int, echo: bool) -> None:
        super().__init__(meta, text_of)
        self.top, self.prompts, self.n, self.echo = logprobs, prompts, n, echo

    def _logprobs(self, c: Choice) -> dict[str, Any] | None:
        return None if self.top is None else legacy_logprobs(c.generations, self.text_of, self.top)

    def _trace(self, result: Result, index: int) -> dict[str, Any] | list[dict[str, Any]]:
        return result.trace[index // self.n] if isinstance(result.trace, list) else result.trace

    def _content(self, c: Choice) -> dict[str, Any]:
        return {"text": (self.prompts[c.index // self.n] if self.echo else "") + c.text}

    def _delta(self, text: str | None) -> dict[str, Any]:
        return {"text": text or ""}

    def opening(self, n: int) -> list[dict[str, Any]]:
        """With ``echo``, each choice starts with its prompt."""
        return [self.piece(i, self.prompts[i // self.n]) for i in range(n)] if self.echo else []
