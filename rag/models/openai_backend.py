"""A `LanguageModel` over any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, `arag serve`).

This is how generation scales beyond one machine: the loop and the triggers stay here, the model
runs behind HTTP. Triggers read token log-probs from the response's ``logprobs`` field. The
chosen-token log-probs are exact, so token-confidence scores (min prob, mean log-prob, FLARE) match
the in-process ones; entropies are not: a server returns only the top-k alternatives, so each
entropy is the lower bound ``-Σ_topk p log p - r log r`` (``r`` = the probability mass outside the
top k, counted as one outcome) and every `Generation` says ``approximate_entropy=True``.

A `generate` over many prompts sends them as concurrent requests (at most ``concurrency`` in flight
per model instance), which is what lets a vLLM server batch them; results keep the prompts' order.
Retries (429, 408, 409, 5xx, connection errors, honouring ``Retry-After``) and timeouts are the
official ``openai`` client's: ``max_retries`` retries with its backoff, then a one-line `ModelError`.

Spec: ``openai:BASE_URL/MODEL``, e.g. ``openai:http://127.0.0.1:8000/v1/default`` (the model is the
last path segment). The API key comes from ``$ARAG_OPENAI_API_KEY`` or ``$OPENAI_API_KEY``.
"""
from __future__ import annotations

import math
import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import urlparse

from corpora.extras import require
from rag.models.lm import Generation, ModelError, Prompt, PromptLike, Usage

if TYPE_CHECKING:
    import openai

OWNER = "adaptive-rag"  # `owned_by` in an arag server's /v1/models: how this backend recognises one
DEFAULT_CONCURRENCY = 16  # requests in flight per model instance (`--concurrency`)


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


class OpenAICompatibleModel:
    """``generate`` sends one chat completion per prompt (``n`` samples in that call) with
    ``logprobs: true``; a prompt's ``prefix`` is sent as a final assistant message with vLLM's
    ``continue_final_message`` so the server continues it."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 300.0,
                 top_logprobs: int = 5, concurrency: int = DEFAULT_CONCURRENCY, max_retries: int = 2) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ModelError(f"not an http(s) base URL: {base_url!r} (expected openai:http://HOST:PORT/v1/MODEL)")
        if not model:
            raise ModelError("no model name after the base URL (expected openai:http://HOST:PORT/v1/MODEL)")
        if concurrency < 1:
            raise ModelError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model
        self.usage = Usage()
        self.top_logprobs = top_logprobs
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        openai = require("openai", "--model openai:URL (the HTTP backend)")
        key = api_key if api_key is not None else os.environ.get("ARAG_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        # a server without authentication ignores the header; the client insists on some key
        self._client = openai.OpenAI(base_url=self.base_url, api_key=key or "EMPTY", timeout=timeout,
                                     max_retries=max_retries)
        self._usage_lock = threading.Lock()  # requests of one batch finish on several threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._is_arag: bool | None = None
        self._warned = False

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> "OpenAICompatibleModel":
        """``openai:BASE_URL/MODEL`` → a model; BASE_URL is everything before the last ``/``."""
        rest = spec[len("openai:"):] if spec.startswith("openai:") else spec
        base, sep, model = rest.rstrip("/").rpartition("/")
        if not sep or "://" not in base:
            raise ModelError(f"bad model spec {spec!r}; expected openai:http://HOST:PORT/v1/MODEL")
        return cls(base, model, **kwargs)

    # -- HTTP ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request through the openai client (its retries and timeout); failures as one-line `ModelError`s."""
        import openai  # installed: __init__ required it

        try:
            if method == "GET":
                data = self._client.get(path, cast_to=object)
            else:
                data = self._client.post(path, cast_to=object, body=body)
        except openai.APITimeoutError:
            tries = self.max_retries + 1
            raise ModelError(f"{self.base_url}{path}: no reply within {self.timeout:g} s "
                             f"({tries} attempt{'s' if tries > 1 else ''})") from None
        except openai.APIConnectionError as exc:
            raise ModelError(f"cannot reach {self.base_url}: {exc.__cause__ or exc}") from None
        except openai.APIStatusError as exc:
            raise ModelError(f"{self.base_url}{path}: HTTP {exc.status_code}: {_error_message(exc)}") from None
        if not isinstance(data, dict):
            raise ModelError(f"{self.base_url}{path}: the response is not a JSON object")
        return data

    def _count(self, calls: int, prompt_tokens: int, generated_tokens: int) -> None:
        with self._usage_lock:
            self.usage.calls += calls
            self.usage.prompt_tokens += prompt_tokens
            self.usage.generated_tokens += generated_tokens

    def _executor(self) -> ThreadPoolExecutor:
        """The threads that send one batch's requests; shared by concurrent callers, so the bound holds per model."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="arag-http")
            return self._pool

    def is_arag_server(self) -> bool:
        """Whether the server is `arag serve` (then requests ask it to skip its own retrieval loop)."""
        if self._is_arag is None:
            try:
                data = self._request("GET", "/models").get("data") or []
            except ModelError:
                data = []
            self._is_arag = any(isinstance(m, dict) and m.get("owned_by") == OWNER for m in data)
        return self._is_arag

    # -- LanguageModel ---------------------------------------------------------------------
    def generate(self, prompts: Sequence[PromptLike], n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 64, stop: Sequence[str] | None = None, seed: int | None = None,
                 top_logprobs: int = 0, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0) -> list[list[Generation]]:
        """``repetition_penalty`` / ``no_repeat_ngram_size`` travel as vLLM-style extra fields (sent only
        when set; `arag serve` honours both, vLLM the first)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        extra = {k: v for k, v in (("repetition_penalty", repetition_penalty), ("no_repeat_ngram_size", no_repeat_ngram_size))
                 if v != (1.0 if k == "repetition_penalty" else 0)}
        args = (n, temperature, top_p, max_new_tokens, stop, seed, top_logprobs, extra)
        if len(prompts) <= 1 or self.concurrency == 1:
            return [self._generate_one(p, *args) for p in prompts]
        self.is_arag_server()  # asked once, before the requests that depend on it go out together
        futures: list[Future] = [self._executor().submit(self._generate_one, p, *args) for p in prompts]
        try:
            return [f.result() for f in futures]
        finally:  # after a failure, requests that have not started are not sent
            for f in futures:
                f.cancel()

    def _body(self, prompt: PromptLike, n, temperature, top_p, max_new_tokens, stop, seed, top_logprobs,
              extra: dict[str, Any]) -> dict:
        p = Prompt.user(prompt) if isinstance(prompt, str) else prompt
        messages = [{"role": r, "content": c} for r, c in p.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages, "n": n, "temperature": temperature,
                                "top_p": top_p, "max_tokens": max_new_tokens, "logprobs": True,
                                "top_logprobs": max(self.top_logprobs, top_logprobs)}
        if p.prefix:
            messages.append({"role": "assistant", "content": p.prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        if stop:
            body["stop"] = [s for s in stop if s]
        if seed is not None:
            body["seed"] = seed
        if self.is_arag_server():
            body["arag"] = {"retrieval": False}
        return {**body, **extra}

    def _generate_one(self, prompt, n, temperature, top_p, max_new_tokens, stop, seed, top_logprobs,
                      extra: dict[str, Any]) -> list[Generation]:
        data = self._request("POST", "/chat/completions",
                             self._body(prompt, n, temperature, top_p, max_new_tokens, stop, seed, top_logprobs, extra))
        usage = data.get("usage") or {}
        self._count(1, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise ModelError(f"{self.base_url}: asked for {n} choices, got {len(choices)}")
        return [self._generation(c, stop, int(usage.get("prompt_tokens") or 0)) for c in choices]

    def _generation(self, choice: dict, stop: Sequence[str] | None, prompt_tokens: int) -> Generation:
        text = (choice.get("message") or {}).get("content") or ""
        content = (choice.get("logprobs") or {}).get("content") or []
        if not content and text and not self._warned:
            warnings.warn(f"{self.base_url} returned no token log-probs: token-confidence triggers will see none",
                          stacklevel=3)
            self._warned = True
        try:
            tokens = [str(c["token"]) for c in content]
            ids = [int(c.get("id", -1)) for c in content]
            lps = [float(c["logprob"]) for c in content]
            tops = [{t["token"]: float(t["logprob"]) for t in (c.get("top_logprobs") or [])} for c in content]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{self.base_url}: malformed logprobs in the reply ({type(exc).__name__}: {exc})") from None
        finish = choice.get("finish_reason")
        stop_hit = _stop_hit(choice, text, tokens, stop)
        return Generation(text=text, token_ids=ids, tokens=tokens, logprobs=lps,
                          entropies=[topk_entropy(t, lp) for t, lp in zip(tops, lps)],
                          finished=finish == "stop" and stop_hit is None, prompt_tokens=prompt_tokens,
                          approximate_entropy=True, stop=stop_hit, top_logprobs=tops)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)  # OpenAI token strings are already text pieces

    def score(self, prompt: PromptLike, continuation: str) -> Generation:
        raise ModelError(f"{self.base_url}: scoring a given continuation is not available over the OpenAI chat API "
                         "(no echo of prompt log-probs); use an in-process model for triggers that need `score`")

    def next_token_logprobs(self, user: str, prefix: str, candidates: Sequence[str]) -> dict[str, float]:
        """One completion of a single token with ``top_logprobs=20`` (the API's maximum): a candidate
        found among them gets its log-prob (compared without surrounding spaces, as servers differ
        in how they write a leading space), one outside them -inf. Exact only as far as the top 20 go."""
        body = self._body(Prompt.user(user, prefix=prefix), 1, 0.0, 1.0, 1, None, None, 20, {})
        data = self._request("POST", "/chat/completions", body)
        self._count(1, int((data.get("usage") or {}).get("prompt_tokens") or 0), 0)
        content = ((data.get("choices") or [{}])[0].get("logprobs") or {}).get("content") or []
        top: dict[str, float] = {}
        for t in (content[0].get("top_logprobs") or []) if content else []:
            key = str(t.get("token", "")).strip()
            top[key] = max(top.get(key, -math.inf), float(t["logprob"]))
        return {c: top.get(c.strip(), -math.inf) for c in candidates}

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
        self._client.close()


def _error_message(exc: "openai.APIStatusError") -> str:
    """The server's own message (OpenAI's ``{"error": {"message"}}``), else the start of its reply."""
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
    return exc.response.text[:200]


def _stop_hit(choice: dict, text: str, tokens: list[str], stop: Sequence[str] | None) -> str | None:
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
