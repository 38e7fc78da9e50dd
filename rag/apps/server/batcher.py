"""Micro-batching: the `generate` calls of concurrent requests, decoded together.

Why: a small model decoding one sequence reads all its weights per token; reading them once for
several requests' rows is where a CPU (or a GPU) gains throughput. Each request keeps running its
own loop (drafts, triggers, retrieval) on its own worker thread and sees the model through a
`BatchedLM`; every `generate` it makes goes into one queue. A single batcher thread takes the first
waiting call, gathers the calls with the same options (everything but the prompts and the
callback: budget, temperature, stops, step end, repetition controls...) that arrive within the
window after it (or are already waiting), up to ``max_batch`` rows, and issues one `generate` over
all their prompts. Each caller gets its own rows back.

Streaming stays per request and never holds up the batch: the batch's ``on_text`` only puts
``(row, text)`` on the calling request's own queue; the request's thread runs its callback. A callback
that raises `rag.models.lm.StopRow` (or anything else: a client that left) ends that caller's rows at their
next token through `StopRow`, and the other rows go on; the stopped rows are cut back to where the
callback stopped them, as if the model had ended them there.

Calls whose seeded sampling must be reproducible (``temperature > 0`` with a seed) are never
merged: one batch shares one random generator. Everything else the model offers (``score``,
``next_token_logprobs``) runs under the batcher's lock, one model call at a time, as before.
"""
from __future__ import annotations

import bisect
import functools
import inspect
import itertools
import math
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rag.models.lm import CANCELLED, Generation, StopRow, Usage
from rag.models.steps import truncate

OnText = Callable[[int, str], None]
COUNTED = ("score", "next_token_logprobs")  # model calls besides generate whose usage a request owns


@dataclass
class _Call:
    """One `generate` of one request, waiting for (or part of) a batch."""

    prompts: list
    n: int
    options: dict[str, Any]
    key: tuple
    on_text: OnText | None
    arrived: float = field(default_factory=time.monotonic)
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    stopped: dict[int, int] = field(default_factory=dict)  # row → length of the text its callback stopped it at
    failed: BaseException | None = None  # the callback raised: the caller left, its rows end

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.n


def _frozen(value: Any) -> Any:
    """A hashable stand-in that is equal for equal options (two stateless `SentenceEnd`s are equal)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if type(value).__eq__ is object.__eq__ and hasattr(value, "__dict__"):
        return type(value), _frozen(vars(value))
    try:
        hash(value)
    except TypeError:
        return "id", id(value)
    return value


def split(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` into integers that add up to it (largest remainder)."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    exact = [total * w / sum(weights) for w in weights]
    parts = [math.floor(x) for x in exact]
    for i in sorted(range(len(parts)), key=lambda i: exact[i] - parts[i], reverse=True)[: total - sum(parts)]:
        parts[i] += 1
    return parts


class MicroBatcher:
    """Merges concurrent `generate` calls on one model; ``batch_sizes`` counts batches by how many calls they merged."""

    def __init__(self, lm, window_ms: float = 5.0, max_batch: int = 16) -> None:
        self.lm = lm
        self.window = window_ms / 1000.0
        self.max_batch = max_batch
        self.lock = threading.RLock()  # one model call at a time: a batch, or a request's score
        self.batch_sizes: Counter[int] = Counter()
        self._queue: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._pending: list[_Call] = []  # taken from the queue, waiting for a batch with their options
        self._solo = itertools.count()
        self._signature = inspect.signature(lm.generate)
        threading.Thread(target=self._serve, name="arag-batcher", daemon=True).start()

    # -- the request's side ------------------------------------------------------------------
    def generate(self, prompts: Sequence, *args: Any, **kw: Any) -> tuple[list[list[Generation]], Usage]:
        """``lm.generate(prompts, ...)`` through a batch, on the caller's thread: its rows, and its share of the usage."""
        bound = self._signature.bind(list(prompts), *args, **kw)
        bound.apply_defaults()
        options = dict(bound.arguments)
        for name, p in self._signature.parameters.items():
            if p.kind is p.VAR_KEYWORD:
                options.update(options.pop(name))
        prompts = options.pop(next(iter(self._signature.parameters)))
        n, on_text = options.pop("n", 1), options.pop("on_text", None)
        key = (n, _frozen(options))
        if options.get("temperature", 0) > 0 and options.get("seed") is not None:
            key += (("solo", next(self._solo)),)  # one generator per batch would change the seeded samples
        call = _Call(prompts, n, options, key, on_text)
        self._queue.put(call)
        return self._wait(call)

    def _wait(self, call: _Call) -> tuple[list[list[Generation]], Usage]:
        """Run the caller's callback on its own rows' text as it comes; return when its batch is done."""
        while True:
            kind, a, b = call.events.get()
            if kind == "text":
                if a in call.stopped:
                    continue
                try:
                    call.on_text(a, b)
                except StopRow:
                    call.stopped[a] = len(b)
                except BaseException as exc:
                    call.failed = exc  # the batch ends this call's rows at their next token
                    raise
            elif kind == "done":
                return self._cut_stopped(call, a), b
            else:
                raise a

    def _cut_stopped(self, call: _Call, gens: list[list[Generation]]) -> list[list[Generation]]:
        """Rows the caller stopped end where it stopped them (the batch noticed a token or so later)."""
        for row, cut in call.stopped.items():
            i, j = divmod(row, call.n)
            g = gens[i][j]
            gens[i][j] = truncate(g, min(cut, len(g.text)), self.lm.detokenize, stop=CANCELLED)
        return gens

    # -- the batcher thread -----------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            batch = self._collect()
            try:
                self._run(batch)
            except BaseException as exc:  # noqa: BLE001 - a caller must never wait forever
                for call in batch:
                    call.events.put(("error", exc, None))

    def _collect(self) -> list[_Call]:
        """The first waiting call and those with its options that arrive within the window after it."""
        if not self._pending:
            self._pending.append(self._queue.get())
        first, rest = self._pending[0], []
        batch, rows = [first], first.rows

        def admit(call: _Call) -> None:
            nonlocal rows
            if call.key == first.key and rows + call.rows <= self.max_batch:
                batch.append(call)
                rows += call.rows
            else:
                rest.append(call)

        for call in self._pending[1:]:
            admit(call)
        deadline = first.arrived + self.window
        while rows < self.max_batch:
            left = deadline - time.monotonic()
            try:
                admit(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        self._pending = rest
        return batch

    def _run(self, batch: list[_Call]) -> None:
        starts = list(itertools.accumulate((c.rows for c in batch), initial=0))[:-1]

        def route(row: int, text: str) -> None:
            k = bisect.bisect_right(starts, row) - 1
            call, local = batch[k], row - starts[k]
            if call.failed is not None or local in call.stopped:
                raise StopRow()
            if call.on_text is not None:
                call.events.put(("text", local, text))

        first = batch[0]
        options = dict(first.options)
        if any(c.on_text is not None for c in batch):
            options["on_text"] = route
        gens, error = None, None
        with self.lock:
            before = self.lm.usage.snapshot()
            try:
                gens = self.lm.generate([p for c in batch for p in c.prompts], n=first.n, **options)
            except Exception as exc:  # noqa: BLE001 - handed to its caller below
                error = exc
            used = self.lm.usage.since(before)
        self.batch_sizes[len(batch)] += 1
        if gens is None:
            if len(batch) == 1:
                first.events.put(("error", error, None))
            else:  # whose prompt failed? each call alone, so that only its caller sees the error
                for call in batch:
                    self._run([call])
            return
        at = 0
        parts = []
        for call in batch:
            parts.append(gens[at:at + len(call.prompts)])
            at += len(call.prompts)
        for call, own, usage in zip(batch, parts, _shares(used, batch, parts)):
            call.events.put(("done", own, usage))


def _shares(used: Usage, batch: list[_Call], parts: list[list[list[Generation]]]) -> list[Usage]:
    """Each call's part of a batch's usage: calls by prompts, prompt tokens by its prompts' lengths,
    generated tokens by its rows' tokens; the parts add up to the batch's usage exactly."""
    calls = split(used.calls, [len(c.prompts) for c in batch])
    prompt = split(used.prompt_tokens, [sum(gs[0].prompt_tokens for gs in own if gs) for own in parts])
    generated = split(used.generated_tokens, [sum(len(g.token_ids) for gs in own for g in gs) for own in parts])
    return [Usage(c, p, g) for c, p, g in zip(calls, prompt, generated)]


class BatchedLM:
    """The model as one request sees it: `generate` goes through the batcher, ``score`` and the like
    run under its lock, and ``usage`` is this request's own (the loop's costs are its deltas)."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self._batcher = batcher
        self._lm = batcher.lm
        self.usage = Usage()
        self._usage_lock = threading.Lock()

        @functools.wraps(self._lm.generate)  # same signature: callers check the model's options with `accepts`
        def generate(prompts, *args, **kw):
            gens, used = batcher.generate(prompts, *args, **kw)
            self._add(used)
            return gens

        self.generate = generate

    def _add(self, used: Usage) -> None:
        with self._usage_lock:
            self.usage.calls += used.calls
            self.usage.prompt_tokens += used.prompt_tokens
            self.usage.generated_tokens += used.generated_tokens

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._lm, name)
        if name not in COUNTED:
            return attr

        @functools.wraps(attr)
        def counted(*args, **kw):
            with self._batcher.lock:
                before = self._lm.usage.snapshot()
                try:
                    return attr(*args, **kw)
                finally:
                    self._add(self._lm.usage.since(before))

        return counted
