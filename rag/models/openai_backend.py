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
from dataclasses import replace
from typing import Any, Sequence
from urllib.parse import urlparse

from corpora.extras import require
from rag.models.http_capabilities import (CONTINUE_FINAL_MESSAGE, NOT_PROBED, RAW_PROMPT, Capabilities,
                                          max_n_from_error, probe, probe_continuation)
from rag.models import llamacpp_native as native
from rag.models.lm import Generation, ModelError, Prompt, PromptLike, Usage
from rag.models.openai_replies import chunks, error_message, logprob_entries, stop_hit, topk_entropy

DEFAULT_CONCURRENCY = 16  # requests in flight per model instance (`--concurrency`)


class OpenAICompatibleModel:
    """``generate`` sends one request per prompt (``n`` samples in it, up to the server's limit) with token
    log-probs, by the route the server's capabilities name (rag/models/http_capabilities.py): a chat
    completion whose ``prefix`` is a final assistant message (vLLM's ``continue_final_message``, or a bare
    prefill), or on llama.cpp the raw prompt on its native ``/completion`` (rag/models/llamacpp_native.py)."""

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
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()
        self._rendered: dict[tuple[tuple[str, str], ...], str] = {}  # messages → the server's rendering
        self._warned = False
        self._token_ids: dict[str, int] = {}  # token string → stand-in id (`_intern`)

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> "OpenAICompatibleModel":
        """``openai:BASE_URL/MODEL`` → a model; BASE_URL is everything before the last ``/``."""
        rest = spec[len("openai:"):] if spec.startswith("openai:") else spec
        base, sep, model = rest.rstrip("/").rpartition("/")
        if not sep or "://" not in base:
            raise ModelError(f"bad model spec {spec!r}; expected openai:http://HOST:PORT/v1/MODEL")
        return cls(base, model, **kwargs)

    # -- HTTP ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
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
            raise ModelError(f"{self.base_url}{path}: HTTP {exc.status_code}: {error_message(exc)}") from None
        if not isinstance(data, (dict, list)):  # a list: llama.cpp's /completion with n > 1
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
        return self.capabilities().server == "arag"

    # -- what the server can do -------------------------------------------------------------
    @property
    def root(self) -> str:
        """The server's address without the API path (llama.cpp's own endpoints live there)."""
        return self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url

    def capabilities(self, continuation: bool = False) -> Capabilities:
        """Asked once per model instance (rag/models/http_capabilities.py says what and why);
        ``continuation``: also find out how an answer is continued, where that needs asking."""
        with self._caps_lock:
            if self._caps is None:
                self._caps = probe(self)
            if continuation and self._caps.continuation == NOT_PROBED:
                self._caps = replace(self._caps, **dict(zip(("continuation", "echoes_prefix"),
                                                            probe_continuation(self))))
            return self._caps

    @property
    def chat(self) -> bool:
        """Whether the served model has a chat template (llama.cpp says; other servers are taken to)."""
        return self.capabilities().chat

    def render(self, prompt: PromptLike) -> str:
        """The prompt as text by the server's own chat template (llama.cpp's ``/apply-template``) plus the
        prefix: what the in-process model decodes from (``HFLanguageModel.render``)."""
        p = Prompt.user(prompt) if isinstance(prompt, str) else prompt
        if not self.chat:  # a base model: plain text, as `HFLanguageModel.render` (the server adds BOS itself)
            return p.plain_text() + p.prefix
        with self._caps_lock:
            text = self._rendered.get(p.messages)
        if text is None:
            data = self._request("POST", self.root + "/apply-template",
                                 {"messages": [{"role": r, "content": c} for r, c in p.messages]})
            text = data.get("prompt")
            if not isinstance(text, str):
                raise ModelError(f"{self.root}/apply-template: no prompt in the reply")
            with self._caps_lock:
                if len(self._rendered) > 256:  # one entry per question in flight is enough
                    self._rendered.clear()
                self._rendered[p.messages] = text
        return text + p.prefix

    # -- LanguageModel ---------------------------------------------------------------------
    def generate(self, prompts: Sequence[PromptLike], n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_new_tokens: int = 64, stop: Sequence[str] | None = None, seed: int | None = None,
                 top_logprobs: int = 0, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0) -> list[list[Generation]]:
        """``repetition_penalty`` / ``no_repeat_ngram_size`` travel as vLLM-style extra fields (sent only
        when set; `arag serve` honours both, vLLM the first). ``n`` beyond what one request may ask
        for (the server's ``max_n``) goes out as several requests, together, seeds continuing
        (seed, seed+1, …: llama.cpp's own rule for the choices of one request)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        caps = self.capabilities(continuation=any(not isinstance(p, str) and p.prefix for p in prompts))
        if caps.continuation is None and any(not isinstance(p, str) and p.prefix for p in prompts):
            raise ModelError(caps.missing_continuation(self.base_url))
        extra = {k: v for k, v in (("repetition_penalty", repetition_penalty), ("no_repeat_ngram_size", no_repeat_ngram_size))
                 if v != (1.0 if k == "repetition_penalty" else 0)}
        opts = (temperature, top_p, max_new_tokens, stop, top_logprobs, extra)
        units = [(i, k, None if seed is None else seed + first) for i in range(len(prompts))
                 for first, k in chunks(n, caps.max_n)]
        if len(units) <= 1 or self.concurrency == 1:
            done = [self._generate_one(prompts[i], k, s, *opts) for i, k, s in units]
        else:
            futures: list[Future] = [self._executor().submit(self._generate_one, prompts[i], k, s, *opts)
                                     for i, k, s in units]
            try:
                done = [f.result() for f in futures]
            finally:  # after a failure, requests that have not started are not sent
                for f in futures:
                    f.cancel()
        out: list[list[Generation]] = [[] for _ in prompts]
        for (i, _, _), gens in zip(units, done):
            out[i].extend(gens)
        return out

    def _body(self, prompt: PromptLike, n, temperature, top_p, max_new_tokens, stop, seed, top_logprobs,
              extra: dict[str, Any]) -> tuple[str, dict]:
        """The endpoint and body of one request, by the server's continuation route."""
        p = Prompt.user(prompt) if isinstance(prompt, str) else prompt
        route = self.capabilities(continuation=bool(p.prefix)).continuation
        body: dict[str, Any] = {"model": self.model, "n": n, "temperature": temperature, "top_p": top_p,
                                "max_tokens": max_new_tokens}
        tops = max(self.top_logprobs, top_logprobs)
        if route == RAW_PROMPT:  # llama.cpp's native endpoint: it says which stop string ended a choice
            path = self.root + "/completion"
            body = {"prompt": self.render(p), "n": n, "temperature": temperature, "top_p": top_p,
                    "n_predict": max_new_tokens, "n_probs": max(tops, 1), **native.NEUTRAL_SAMPLERS}
            extra = dict(extra)
            if "repetition_penalty" in extra:
                body["repeat_penalty"] = extra.pop("repetition_penalty")
            extra.pop("no_repeat_ngram_size", None)  # applied by `_banned_choices`, which llama.cpp cannot do
        else:
            path = "/chat/completions"
            messages = [{"role": r, "content": c} for r, c in p.messages]
            body.update(messages=messages, logprobs=True, top_logprobs=tops)
            if p.prefix:
                messages.append({"role": "assistant", "content": p.prefix})
                if route == CONTINUE_FINAL_MESSAGE:  # the bare prefill route sends the message alone
                    body.update(continue_final_message=True, add_generation_prompt=False)
        if stop:
            body["stop"] = [s for s in stop if s]
        if seed is not None:
            body["seed"] = seed
        if self.capabilities().server == "arag":
            body["arag"] = {"retrieval": False}
        return path, {**body, **extra}

    def _generate_one(self, prompt: PromptLike, n: int, seed: int | None, temperature, top_p, max_new_tokens, stop,
                      top_logprobs, extra: dict[str, Any]) -> list[Generation]:
        """``n`` choices of one prompt; a server that returns fewer (one that ignores ``n``) is asked again
        for the rest, seeds continuing, and remembered as allowing only that many."""
        gens: list[Generation] = []
        if extra.get("no_repeat_ngram_size", 0) > 0 and self.capabilities().continuation == RAW_PROMPT:
            return self._banned_choices(prompt, n, seed, temperature, top_p, max_new_tokens, stop, top_logprobs, extra)
        while len(gens) < n:
            want = n - len(gens)
            path, body = self._body(prompt, want, temperature, top_p, max_new_tokens, stop,
                                    None if seed is None else seed + len(gens), top_logprobs, extra)
            try:
                data = self._request("POST", path, body)
            except ModelError as exc:
                limit = max_n_from_error(str(exc))
                if limit is None or want <= limit:
                    raise
                self._learn_max_n(limit)
                for _, k in chunks(want, limit):
                    gens += self._generate_one(prompt, k, None if seed is None else seed + len(gens), temperature,
                                               top_p, max_new_tokens, stop, top_logprobs, extra)
                return gens
            if isinstance(data, list) or path.endswith("/completion"):  # llama.cpp's native reply
                data = native.as_openai(data)
            usage = data.get("usage") or {}
            self._count(1, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
            choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices or len(choices) > want:
                raise ModelError(f"{self.base_url}: asked for {want} choices, got {len(choices)}")
            if len(choices) < want:
                self._learn_max_n(len(choices))
            prefix = "" if isinstance(prompt, str) else prompt.prefix
            gens += [self._generation(c, stop, int(usage.get("prompt_tokens") or 0), prefix) for c in choices]
        return gens

    def _banned_choices(self, prompt: PromptLike, n: int, seed: int | None, temperature, top_p, max_new_tokens, stop,
                        top_logprobs, extra: dict[str, Any]) -> list[Generation]:
        """llama.cpp with the n-gram ban, which it has no sampler for (rag/models/llamacpp_native.py):
        each choice decoded on its own, seeds continuing."""
        p = Prompt.user(prompt) if isinstance(prompt, str) else prompt
        _, body = self._body(p, 1, temperature, top_p, max_new_tokens, stop, None, top_logprobs, extra)
        prompt_ids = self._tokenize(body.pop("prompt"), special=True)
        history = self._tokenize(p.prefix, special=False) if p.prefix else []

        def post(b: dict[str, Any]) -> dict[str, Any]:
            return self._request("POST", self.root + "/completion", b)

        def one(i: int) -> Generation:
            b = {**body, **({"seed": seed + i} if seed is not None else {})}
            choice, calls, evaluated = native.decode_with_ban(post, prompt_ids, history, b, extra["no_repeat_ngram_size"],
                                                              max_new_tokens, [s for s in stop or () if s])
            self._count(calls, evaluated, len(choice["logprobs"]["content"]))
            return self._generation(choice, stop, len(prompt_ids))

        if n == 1:
            return [one(0)]
        with ThreadPoolExecutor(max_workers=min(n, self.capabilities().max_n or n)) as pool:  # the server's slots
            return list(pool.map(one, range(n)))

    def _tokenize(self, text: str, special: bool) -> list[int]:
        """llama.cpp's ``/tokenize``; ``special``: as ``/completion`` reads a text prompt (BOS where the model
        wants one, control tokens parsed), else as the in-process model encodes an answer's text."""
        data = self._request("POST", self.root + "/tokenize", {"content": text, "add_special": special,
                                                               "parse_special": special})
        return [int(t) for t in data.get("tokens") or []]

    def _learn_max_n(self, limit: int) -> None:
        with self._caps_lock:
            if self._caps is not None and (self._caps.max_n is None or limit < self._caps.max_n):
                self._caps = replace(self._caps, max_n=limit)

    def _generation(self, choice: dict, stop: Sequence[str] | None, prompt_tokens: int, prefix: str = "") -> Generation:
        text = choice["text"] if isinstance(choice.get("text"), str) else (choice.get("message") or {}).get("content") or ""
        if prefix and self.capabilities().echoes_prefix and text.startswith(prefix):
            text = text[len(prefix):]  # the server returns the answer so far again (module docstring of http_capabilities)
        content = logprob_entries(choice.get("logprobs"))
        if not content and text and not self._warned:
            warnings.warn(f"{self.base_url} returned no token log-probs: token-confidence triggers will see none",
                          stacklevel=3)
            self._warned = True
        try:
            tokens = [str(c["token"]) for c in content]
            ids = [int(c["id"]) if "id" in c else self._intern(str(c["token"])) for c in content]
            lps = [float(c["logprob"]) for c in content]
            tops = [{t["token"]: float(t["logprob"]) for t in (c.get("top_logprobs") or [])} for c in content]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{self.base_url}: malformed logprobs in the reply ({type(exc).__name__}: {exc})") from None
        finish = choice.get("finish_reason")
        hit = stop_hit(choice, text, tokens, stop)
        return Generation(text=text, token_ids=ids, tokens=tokens, logprobs=lps,
                          entropies=[topk_entropy(t, lp) for t, lp in zip(tops, lps)],
                          finished=finish == "stop" and hit is None, prompt_tokens=prompt_tokens,
                          approximate_entropy=True, stop=hit, top_logprobs=tops)

    def _intern(self, token: str) -> int:
        """A stand-in id for a token string where the server sends none (OpenAI, vLLM): negative, so never a
        vocabulary id, and the same for the same string, so the loop's repetition check (rag/models/steps.py
        ``loop_end``) sees real repeats instead of one id repeated — with a constant -1, every answer was cut
        after 8 tokens as a "loop"."""
        with self._usage_lock:
            return self._token_ids.setdefault(token, -2 - len(self._token_ids))

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)  # OpenAI token strings are already text pieces

    def score(self, prompt: PromptLike, continuation: str) -> Generation:
        raise ModelError(f"{self.base_url}: scoring a given continuation is not available over the OpenAI chat API "
                         "(no echo of prompt log-probs); use an in-process model for triggers that need `score`")

    def next_token_logprobs(self, user: str, prefix: str, candidates: Sequence[str]) -> dict[str, float]:
        """One completion of a single token with ``top_logprobs=20`` (the API's maximum): a candidate
        found among them gets its log-prob (compared without surrounding spaces, as servers differ
        in how they write a leading space), one outside them -inf. Exact only as far as the top 20 go."""
        path, body = self._body(Prompt.user(user, prefix=prefix), 1, 0.0, 1.0, 1, None, None, 20, {})
        data = self._request("POST", path, body)
        self._count(1, int((data.get("usage") or {}).get("prompt_tokens") or 0), 0)
        content = logprob_entries((data.get("choices") or [{}])[0].get("logprobs"))
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
