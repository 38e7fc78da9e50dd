"""The model work behind the endpoints: one pipeline, one worker thread.

Every request's model work runs on a single-thread executor, so requests queue instead of
interleaving: the model's KV cache and the per-answer cost counters (deltas of ``lm.usage``) stay
per request, and the event loop never blocks on the model.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable

from rag.conversation import conversation_turn
from rag.errors import USER_ERRORS
from rag.lm import Prompt
from rag.loop import AdaptiveRAG
from rag.pipeline import Pipeline
from rag.server.errors import APIError
from rag.server.requests import Job
from rag.server.responses import Choice, Result, TokenText, answer_trace
from rag.streaming import StepStream, accepts, token_decoder

OnPiece = Callable[[int, str], None]  # (choice index, text): streamed text as it becomes final


class ChatService:
    """Runs jobs against one pipeline, one at a time, on a single worker thread."""

    def __init__(self, pipeline: Pipeline, model_name: str | None = None) -> None:
        self.pipeline = pipeline
        self.model_name = model_name or getattr(pipeline.lm, "name", "model")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arag-model")
        self.text_of = TokenText(getattr(pipeline.lm, "tokenizer", None))
        self._triggers: dict[str, Any] = {}

    def model_ids(self) -> list[str]:
        return list(dict.fromkeys([self.model_name, "default"]))

    def _trigger(self, name: str | None):
        if name is None:
            return self.pipeline.trigger
        if name not in self._triggers:
            self._triggers[name] = self.pipeline.make_trigger(name)
        return self._triggers[name]

    def run_adaptive(self, job: Job, on_text: Callable[[str], None] | None = None) -> Result:
        turn = conversation_turn(job.messages)
        p = self.pipeline
        config = replace(p.config, seed=p.config.seed if job.seed is None else job.seed,
                         top_logprobs=job.top_logprobs if job.logprobs else 0)
        loop = AdaptiveRAG(p.lm, p.retriever, self._trigger(job.trigger), config=config)
        answer = loop.answer(turn.question, history=turn.history, retrieval_query=turn.retrieval_query, on_text=on_text)
        trace = answer_trace(answer)
        trace["retrieval_query"] = turn.retrieval_query
        finish = "length" if answer.stop_reason == "step budget" else "stop"
        gens = [s.generation for s in answer.steps if s.generation is not None]
        return Result([Choice(0, answer.text, finish, None, gens)], answer.costs.prompt_tokens,
                      answer.costs.generated_tokens, trace)

    def run_raw(self, job: Job, on_piece: OnPiece | None = None) -> Result:
        lm = self.pipeline.lm
        msgs = job.messages
        prefix = ""
        if job.continue_final:
            prefix, msgs = msgs[-1][1], msgs[:-1]
        prompt = Prompt(messages=tuple(msgs), prefix=prefix)
        extra: dict[str, Any] = {}
        if job.logprobs and job.top_logprobs and accepts(lm.generate, "top_logprobs"):
            extra["top_logprobs"] = job.top_logprobs
        streams: list[StepStream] = []
        decode = token_decoder(lm) if on_piece is not None else None
        if decode is not None:
            streams = [StepStream(decode, job.stop, (lambda i: lambda s: on_piece(i, s))(i)) for i in range(job.n)]
            extra["on_token"] = lambda i, t: streams[i].on_token(0, t)
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
        return Result(choices, used.prompt_tokens, used.generated_tokens, trace)

    def run(self, job: Job, on_piece: OnPiece | None = None) -> Result:
        try:
            if job.retrieval:
                return self.run_adaptive(job, (lambda s: on_piece(0, s)) if on_piece else None)
            return self.run_raw(job, on_piece)
        except USER_ERRORS as exc:
            raise APIError(400, str(exc)) from None
