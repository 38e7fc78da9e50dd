"""Reading an OpenAI-compatible server's replies: token log-probs in either format, the entropy bound
from top-k alternatives, which stop string ended a choice, the server's error message — and how ``n``
choices are split into requests. Pure functions of the replies, kept apart from the HTTP client."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import openai


def topk_entropy(top: dict[str, float], chosen: float | None = None) -> float:
    """Lower bound on the entropy (nats) of a distribution known only by its top-k log-probs."""
    lps = list(top.values())
    if chosen is not None and not any(abs(chosen - lp) < 1e-12 for lp in lps):
        lps.append(chosen)  # the sampled token may lie outside the top k
    ps = [math.exp(lp) for lp in lps]
    h = -sum(p * lp for p, lp in zip(ps, lps))
    rest = 1.0 - sum(ps)
    if rest > 1e-12:
        h -= rest * math.log(rest)
    return max(h, 0.0)


def chunks(n: int, limit: int | None) -> list[tuple[int, int]]:
    """``n`` choices as (first choice's index, count) requests of at most ``limit`` each."""
    step = n if not limit else max(1, limit)
    return [(first, min(step, n - first)) for first in range(0, n, step)]


def logprob_entries(logprobs: Any) -> list[dict[str, Any]]:
    """Per-token entries ``{token, logprob, top_logprobs: [{token, logprob}], id?}`` from a chat reply's
    ``logprobs.content`` (also llama.cpp's ``/v1/completions``) or the legacy completions format
    (parallel ``tokens`` / ``token_logprobs`` / ``top_logprobs`` lists)."""
    if not isinstance(logprobs, dict):
        return []
    if isinstance(logprobs.get("content"), list):
        return logprobs["content"]
    tokens, lps = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    return [{"token": t, "logprob": lp, "top_logprobs": [{"token": k, "logprob": v} for k, v in (top or {}).items()]}
            for t, lp, top in zip(tokens, lps, tops)]


def error_message(exc: "openai.APIStatusError") -> str:
    """The server's own message (OpenAI's ``{"error": {"message"}}``), else the start of its reply."""
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
    return exc.response.text[:200]


def stop_hit(choice: dict, text: str, tokens: list[str], stop: Sequence[str] | None) -> str | None:
    """Which stop string ended the choice: vLLM (and `arag serve`) say so in ``stop_reason``;
    otherwise guess from the returned tokens running past the text."""
    if choice.get("finish_reason") != "stop" or not stop:
        return None
    if "stop_reason" in choice:  # None there means end-of-sequence, not a stop string
        reason = choice["stop_reason"]
        return reason if isinstance(reason, str) else None
    tail = "".join(tokens)[len(text):] if "".join(tokens).startswith(text) else ""
    hits = [s for s in stop if s and tail.startswith(s)]
    return max(hits, key=len) if hits else None
