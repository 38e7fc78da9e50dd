"""Response bodies in OpenAI's shapes, built from the service's `Result`.

The service returns generations and plain fields; the shape a client expects (a chat message or a
completion text, log-probs as ``content`` entries or the legacy parallel lists, chunks for
streaming) is decided here, once per endpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rag.lm import Generation
from rag.openai_backend import OWNER
from rag.trace import Answer


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
    """What the service computed for one job: choices, OpenAI usage, and the ``arag`` trace."""

    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int
    trace: dict[str, Any]


class TokenText:
    """Token strings as OpenAI returns them: the text of each token and its UTF-8 bytes.

    Byte-level BPE tokens ("ĠParis") are mapped back to their raw bytes, so a token that holds half
    of a multi-byte character still has exact ``bytes``."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.byte_decoder: dict[str, int] = {}
        if tokenizer is not None:
            try:
                from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

                self.byte_decoder = {v: k for k, v in bytes_to_unicode().items()}
            except ImportError:  # pragma: no cover - transformers always has it
                pass

    def __call__(self, token: str) -> tuple[str, list[int]]:
        if self.tokenizer is None:
            return token, list(token.encode("utf-8"))
        if self.byte_decoder and all(c in self.byte_decoder for c in token):
            raw = bytes(self.byte_decoder[c] for c in token)
            return raw.decode("utf-8", errors="replace"), list(raw)
        text = self.tokenizer.convert_tokens_to_string([token])
        return text, list(text.encode("utf-8"))


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


class ChatShape:
    """`/v1/chat/completions`: messages, ``logprobs.content``, ``chat.completion.chunk``."""

    def __init__(self, meta: dict[str, Any], text_of: TokenText, logprobs: bool, top_logprobs: int) -> None:
        self.meta, self.text_of, self.logprobs, self.top = meta, text_of, logprobs, top_logprobs

    def _logprobs(self, c: Choice) -> dict[str, Any] | None:
        return {"content": logprobs_content(c.generations, self.text_of, self.top)} if self.logprobs else None

    def body(self, result: Result) -> dict[str, Any]:
        return {**self.meta, "object": "chat.completion", "system_fingerprint": OWNER,
                "choices": [{"index": c.index, "message": {"role": "assistant", "content": c.text},
                             "logprobs": self._logprobs(c), "finish_reason": c.finish_reason,
                             "stop_reason": c.stop_reason} for c in result.choices],
                "usage": usage(result), "arag": result.trace}

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**self.meta, "object": "chat.completion.chunk", "system_fingerprint": OWNER, "choices": choices, **extra}

    def opening(self, n: int) -> list[dict[str, Any]]:
        return [self.chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                             "finish_reason": None} for i in range(n)])]

    def piece(self, index: int, text: str) -> dict[str, Any]:
        return self.chunk([{"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])

    def closing(self, result: Result) -> list[dict[str, Any]]:
        """One chunk per choice with its finish reason; the choice's log-probs travel with it."""
        return [self.chunk([{"index": c.index, "delta": {}, "logprobs": self._logprobs(c),
                             "finish_reason": c.finish_reason, "stop_reason": c.stop_reason}], arag=result.trace)
                for c in result.choices]

    def usage_chunk(self, result: Result) -> dict[str, Any]:
        return self.chunk([], usage=usage(result))
