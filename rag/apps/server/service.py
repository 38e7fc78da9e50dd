"""The model work behind the endpoints: one pipeline, worker threads, and the micro-batcher.

Every request's work runs on a worker of the service's executor, so the event loop never blocks on
the model. With micro-batching (``max_batch`` > 1, the default) each request has a worker of its
own and sees the model through a `rag.apps.server.batcher.BatchedLM`: the `generate` calls of requests
that arrive together are decoded in one batch, and each request's cost counters (deltas of its
``lm.usage``) stay its own. With ``max_batch=1`` there is one worker and requests queue, one at a
time. A request whose client went away (a closed stream, a non-streamed client that timed out)
stops at the model's next token: otherwise one abandoned 1000-token request keeps others waiting.
"""
from __future__ import annotations

import functools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable

from rag.apps.conversation import conversation_turn
from rag.apps.server.batcher import BatchedLM, MicroBatcher
from rag.apps.server.errors import APIError
from rag.apps.server.requests import Job
from rag.apps.server.responses import Choice, Result, TokenText, answer_trace
from rag.errors import USER_ERRORS
from rag.loop import AdaptiveRAG
from rag.loop.prompts import PromptTemplates
from rag.loop.streaming import StepStream, accepts, can_stream
from rag.models.lm import Prompt
from rag.pipeline import Pipeline
from triggers.registry import names_a_class

OnPiece = Callable[[int, str], None]  # (choice index, text): streamed text as it becomes final


class ClientGone(Exception):
    """Raised inside the model worker to abandon work whose client disconnected."""


class CancellableLM:
    """The pipeline's model, checking before every call and after every token whether the client is
    still there (the loop, the triggers' samples and raw completions all generate through it)."""

    def __init__(self, lm, gone: threading.Event) -> None:
        self._lm, self._gone = lm, gone
        inner = lm.generate
        # the model's per-token callback, if it has one, is where a token-by-token check can run
        hook = next((name for name in ("on_text", "on_token") if accepts(inner, name)), None)

        @functools.wraps(inner)  # same signature: `accepts` sees the model's own options
        def generate(prompts, *args, **kw):
            self.check()
            if hook is not None:
                user = kw.get(hook)

                def per_token(*a) -> None:
                    self.check()
                    if user is not None:
                        user(*a)

                kw[hook] = per_token
            return inner(prompts, *args, **kw)

        self.generate = generate

    def check(self) -> None:
        if self._gone.is_set():
            raise ClientGone()

    def score(self, *args, **kw):
        self.check()
        return self._lm.score(*args, **kw)

    def __getattr__(self, name: str):
        return getattr(self._lm, name)


def context_length(lm) -> int | None:
    """The model's context window in tokens, where it says (transformers' config)."""
    own = getattr(lm, "context_length", None)
    if isinstance(own, int):
        return own
    n = getattr(getattr(getattr(lm, "model", None), "config", None), "max_position_embeddings", None)
    return n if isinstance(n, int) else None


class ChatService:
    """Runs jobs against one pipeline: with ``max_batch`` > 1, up to ``max_batch`` at once, their
    `generate` calls merged by a `MicroBatcher` (``batch_window_ms``); with 1, one at a time."""

    def __init__(self, pipeline: Pipeline, model_name: str | None = None, batch_window_ms: float = 5.0,
                 max_batch: int = 16) -> None:
        self.pipeline = pipeline
        self.model_name = model_name or getattr(pipeline.lm, "name", "model")
        self.batcher = MicroBatcher(pipeline.lm, batch_window_ms, max_batch) if max_batch > 1 else None
        self.executor = ThreadPoolExecutor(max_workers=max_batch, thread_name_prefix="arag-model")
        self.text_of = TokenText(getattr(pipeline.lm, "tokenizer", None))
        self._triggers: dict[str, Any] = {}
        self._triggers_lock = threading.Lock()

    def model_ids(self) -> list[str]:
        return list(dict.fromkeys([self.model_name, "default"]))

    def trigger(self, name: str | None, settings: dict[str, Any] | None = None):
        """The pipeline's trigger, or another one by name or with other ``settings`` (built once per
        name and settings, with the pipeline's settings); a name or setting that does not build is
        the client's mistake: a 400 naming ``arag.trigger`` or ``arag.trigger_options``."""
        if name is None and not settings:
            return self.pipeline.trigger
        name = name or self.pipeline.trigger.name
        if name != self.pipeline.trigger.name and names_a_class(name):  # a client must not make the server import code
            raise APIError(400, "arag.trigger: package.module:ClassName imports code on the server; install the "
                                "trigger as a plugin or start the server with --trigger instead", "arag.trigger")
        if "learned:" in name:  # a client must not make the server open files by path
            if name == getattr(self.pipeline.trigger, "name", None) and not settings:
                return self.pipeline.trigger
            raise APIError(400, "arag.trigger: learned:PATH names a file on the server; start the server with "
                                "--trigger learned:PATH instead", "arag.trigger")
        key = json.dumps([name, settings or {}], sort_keys=True)
        with self._triggers_lock:  # requests run side by side: build each trigger once
            if key not in self._triggers:
                try:
                    self._triggers[key] = self.pipeline.make_trigger(name, settings)
                except USER_ERRORS as exc:
                    param = "arag.trigger_options" if settings else "arag.trigger"
                    raise APIError(400, f"{param}: {exc}", param) from None
            return self._triggers[key]

    def prepare(self, jobs: list[Job]) -> None:
        """What can fail before any text is produced, checked before a reply starts (a 4xx, never an
        error event after a 200): the per-request trigger, and a prompt longer than the model's
        context (refused before decoding: past it a model answers nonsense, and 1 MB decodes for minutes)."""
        lm, limit = self.pipeline.lm, context_length(self.pipeline.lm)
        for job in jobs:
            self.trigger(job.trigger, job.trigger_options)
            if job.loop:
                try:
                    replace(self.pipeline.config, **job.loop)
                except USER_ERRORS as exc:
                    raise APIError(400, f"arag.abstain: {exc}", "arag.abstain") from None  # the one cross-field rule
            if limit is None or not hasattr(lm, "encode") or not hasattr(lm, "render"):
                continue
            n = len(lm.encode(lm.render(self._first_prompt(job))))
            if n >= limit:
                raise APIError(400, f"the prompt is {n} tokens; this model's context is {limit} tokens", job.source,
                               "context_length_exceeded")

    @staticmethod
    def _first_prompt(job: Job) -> Prompt:
        """The prompt of the job's first model call (the loop's first draft, or the raw completion)."""
        if job.retrieval:
            turn = conversation_turn(job.messages)
            return Prompt(messages=tuple(turn.history) + PromptTemplates().build(turn.question).messages)
        if job.continue_final:
            return Prompt(messages=tuple(job.messages[:-1]), prefix=job.messages[-1][1])
        return Prompt(messages=tuple(job.messages))

    def run_adaptive(self, job: Job, lm, on_text: Callable[[str], None] | None = None) -> Result:
        turn = conversation_turn(job.messages)
        p = self.pipeline
        config = replace(p.config, seed=p.config.seed if job.seed is None else job.seed,
                         top_logprobs=job.top_logprobs if job.logprobs else 0, answer_tokens=job.max_tokens,
                         answer_stops=tuple(job.stop), temperature=job.temperature, top_p=job.top_p,
                         **job.repetition, **job.loop)
        loop = AdaptiveRAG(lm, p.retriever, self.trigger(job.trigger, job.trigger_options), config=config)
        answer = loop.answer(turn.question, history=turn.history, retrieval_query=turn.retrieval_query, on_text=on_text)
        trace = answer_trace(answer)
        trace["retrieval_query"] = turn.retrieval_query
        finish = "length" if answer.stop_reason in ("step budget", "token budget") else "stop"
        gens = [s.generation for s in answer.steps if s.generation is not None]
        returned = sum(len(g.token_ids) for g in gens)  # the drafts, samples and regenerations are in trace["costs"]
        return Result([Choice(0, answer.text, finish, answer.stop_string, gens)], answer.costs.prompt_tokens,
                      returned, trace)

    def run_raw(self, job: Job, lm, on_piece: OnPiece | None = None) -> Result:
        prompt = self._first_prompt(job)
        extra: dict[str, Any] = {}
        if job.logprobs and job.top_logprobs and accepts(lm.generate, "top_logprobs"):
            extra["top_logprobs"] = job.top_logprobs
        for name, value in job.repetition.items():
            if not accepts(lm.generate, name):
                raise APIError(400, f"{name} is not supported by this server's model", name)
            extra[name] = value
        streams: list[StepStream] = []
        if on_piece is not None and can_stream(lm):
            streams = [StepStream((lambda i: lambda s: on_piece(i, s))(i), job.stop) for i in range(job.n)]
            extra["on_text"] = lambda i, text: streams[i].on_text(0, text)
        before = lm.usage.snapshot()
        t0 = time.perf_counter()
        gens = lm.generate([prompt], n=job.n, temperature=job.temperature, top_p=job.top_p,
                           max_new_tokens=job.max_tokens or 256, stop=job.stop or None, seed=job.seed, **extra)[0]
        seconds = time.perf_counter() - t0
        used = lm.usage.since(before)
        choices = []
        for i, g in enumerate(gens):
            if streams:
                streams[i].finish(g.text)
            elif on_piece is not None:
                on_piece(i, g.text)
            choices.append(Choice(i, g.text, "stop" if (g.finished or g.stop) else "length", g.stop, [g]))
        trace = {"mode": "raw", "retrieved": False, "approximate_entropy": any(g.approximate_entropy for g in gens),
                 "costs": {"lm_calls": used.calls, "retriever_calls": 0, "prompt_tokens": used.prompt_tokens,
                           "generated_tokens": used.generated_tokens, "seconds": seconds}}
        return Result(choices, used.prompt_tokens, sum(len(g.token_ids) for g in gens), trace)

    def run(self, job: Job, on_piece: OnPiece | None = None, gone: threading.Event | None = None) -> Result:
        """Run one job (on the worker); ``gone`` set by the caller abandons it with `ClientGone`."""
        model = BatchedLM(self.batcher) if self.batcher is not None else self.pipeline.lm
        lm = CancellableLM(model, gone or threading.Event())
        lm.check()  # the client left while the request waited in the queue
        try:
            if job.retrieval:
                return self.run_adaptive(job, lm, (lambda s: on_piece(0, s)) if on_piece else None)
            return self.run_raw(job, lm, on_piece)
        except USER_ERRORS as exc:
            raise APIError(400, str(exc)) from None

    def run_all(self, jobs: list[Job], on_piece: OnPiece | None = None, gone: threading.Event | None = None) -> Result:
        """Several prompts of one completions request, in order: choice ``k * n + i`` is prompt k's i-th."""
        if len(jobs) == 1:
            return self.run(jobs[0], on_piece, gone)
        results = []
        for k, job in enumerate(jobs):
            base = k * job.n
            piece = (lambda b: lambda i, s: on_piece(b + i, s))(base) if on_piece is not None else None
            result = self.run(job, piece, gone)
            for c in result.choices:
                c.index += base
            results.append(result)
        return Result([c for r in results for c in r.choices], sum(r.prompt_tokens for r in results),
                      sum(r.completion_tokens for r in results), [r.trace for r in results])
