"""The step-wise adaptive retrieval loop (DESIGN.md "Data flow").

    question ─► [check on the question alone] ─► for each step (a sentence):
        draft greedily (token log-probs and entropies kept) ─► trigger scores the draft
        ─► fired? no: accept the draft
                  yes: query = question + draft with unsure tokens masked (FLARE)
                       ─► retrieve top-k ─► regenerate the step with the passages ─► accept
    ─► Answer(text, trace, costs)

Passages retrieved for a step stay in the prompt for the following drafts (as in FLARE), so a
later step is drafted with the evidence an earlier one needed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from rag.errors import UsageError
from rag.lm import Generation, LanguageModel, Prompt
from rag.prompts import PromptTemplates
from rag.query import form_query
from rag.streaming import AnswerText, StepStream, StopHold, accepts, first_stop, token_decoder
from rag.trace import Answer, Costs, StepTrace
from retrievers.base import Passage, Retriever, check_k
from triggers.base import Signal, StepState, Trigger

# A step ends at a sentence boundary. The stop string is excluded from the text (OpenAI semantics)
# and its punctuation put back; "\n" ends a step too (lists, paragraphs).
SENTENCE_STOPS: tuple[str, ...] = (". ", "! ", "? ", "\n")


@dataclass
class LoopConfig:
    k: int = 3  # passages per retrieval
    max_steps: int = 6  # sentences per answer
    max_retrievals: int = 3  # retrieval budget per answer (pre-generation check included)
    step_tokens: int = 48  # token budget of one step
    mask_below: float = 0.4  # FLARE: draft tokens below this probability are left out of the query
    seed: int | None = 0  # for triggers that sample, and for drafts when temperature > 0
    stops: Sequence[str] = field(default_factory=lambda: SENTENCE_STOPS)
    top_logprobs: int = 0  # > 0: keep the k most likely tokens per position (models that support it)
    # what a caller (an OpenAI request) asks of the returned answer: a token budget over all accepted
    # steps, stop strings that end the answer (excluded from it), and sampling for drafts and regenerations
    answer_tokens: int | None = None
    answer_stops: Sequence[str] = ()
    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        check_k(self.k)
        for name in ("max_steps", "step_tokens"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.answer_tokens is not None and self.answer_tokens < 1:
            raise UsageError(f"answer_tokens must be >= 1, got {self.answer_tokens}")
        if self.max_retrievals < 0:
            raise UsageError(f"max_retrievals must be >= 0, got {self.max_retrievals}")


def step_text(g: Generation, answer_stops: Sequence[str] = ()) -> str:
    """The generated step with the sentence punctuation its stop string cut off put back (unless the
    caller asked to stop there)."""
    if g.stop and g.stop.strip() in (".", "!", "?") and g.stop not in answer_stops:
        return g.text + g.stop.strip()
    return g.text


def _token_table(g: Generation) -> list[dict]:
    return [{"token": t, "logprob": lp, "entropy": h} for t, lp, h in zip(g.tokens, g.logprobs, g.entropies)]


class AdaptiveRAG:
    """Answer questions, retrieving only when the trigger says the model does not know."""

    def __init__(self, lm: LanguageModel, retriever: Retriever | None, trigger: Trigger,
                 templates: PromptTemplates | None = None, config: LoopConfig | None = None) -> None:
        self.lm = lm
        self.retriever = retriever
        self.trigger = trigger
        self.templates = templates or PromptTemplates()
        self.config = config or LoopConfig()

    # -- one step ------------------------------------------------------------------------
    def _draft(self, question: str, context: list[Passage], accepted: str, history: Sequence[tuple[str, str]] = (),
               stream: StepStream | None = None, budget: int | None = None,
               index: int = 0) -> tuple[Generation, object]:
        prompt = self.templates.build(question, context, prefix=accepted)
        if history:  # earlier turns of a conversation come before this question (rag/conversation.py)
            prompt = Prompt(messages=tuple(history) + prompt.messages, prefix=prompt.prefix)
        extra: dict = {}
        if self.config.top_logprobs > 0 and accepts(self.lm.generate, "top_logprobs"):
            extra["top_logprobs"] = self.config.top_logprobs
        if stream is not None:
            extra["on_token"] = stream.on_token
        cfg = self.config
        if cfg.temperature > 0:  # greedy drafting needs no seed; sampled steps get one each, reproducibly
            extra.update(temperature=cfg.temperature, top_p=cfg.top_p,
                         seed=None if cfg.seed is None else (cfg.seed + index) % 2**63)
        g = self.lm.generate([prompt], max_new_tokens=min(cfg.step_tokens, budget or cfg.step_tokens),
                             stop=self._stops(), **extra)[0][0]
        return g, prompt

    def _stops(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.config.stops, *(s for s in self.config.answer_stops if s)]))

    def _state(self, question: str, accepted: str, draft: Generation | None, index: int, prompt,
               query: str | None = None) -> StepState:
        """``query``: what the loop retrieves with if this step fires (a trigger may search it first)."""
        return StepState(question=question, accepted=accepted, draft=draft, step_index=index, sampler=self.lm,
                         prompt=prompt, max_new_tokens=self.config.step_tokens, stop=self._stops(),
                         seed=self.config.seed, retriever=self.retriever, query=query, k=self.config.k)

    def _retrieve(self, query: str, costs: Costs) -> list[Passage]:
        if self.retriever is None:
            return []
        costs.retriever_calls += 1
        return self.retriever.retrieve(query, self.config.k)

    def _reuse_or_retrieve(self, state: StepState, costs: Costs) -> list[Passage]:
        """The passages a trigger already searched for this step's query, else a new search."""
        searched = state.searched()
        return list(searched) if searched is not None else self._retrieve(state.query or state.question, costs)

    # -- the loop --------------------------------------------------------------------------
    def answer(self, question: str, *, history: Sequence[tuple[str, str]] = (), retrieval_query: str | None = None,
               on_text: Callable[[str], None] | None = None) -> Answer:
        """Answer one question.

        ``history``: earlier (role, content) turns put before the question in every prompt;
        ``retrieval_query``: what to retrieve with instead of the question (a conversation's condensed
        query); ``on_text``: called with accepted answer text as soon as it is final — never with a
        draft the trigger rejects — and the pieces add up to ``Answer.text``. A step regenerated with
        passages (or drafted when no retrieval is possible any more) streams token by token when the
        model supports ``on_token``; a draft that the trigger accepts arrives as one piece.
        """
        if not isinstance(question, str) or not question.strip():
            raise UsageError("question is empty")
        question = question.strip()
        base_query = retrieval_query.strip() if retrieval_query and retrieval_query.strip() else question
        cfg = self.config
        out = AnswerText(on_text) if on_text is not None else None
        held = StopHold(out.feed, cfg.answer_stops) if out is not None and cfg.answer_stops else None
        feed = held.feed if held is not None else (out.feed if out is not None else None)
        decode = token_decoder(self.lm) if out is not None else None
        stops = self._stops()
        t0 = time.perf_counter()
        before = self.lm.usage.snapshot()
        costs = Costs()
        retrievals = 0
        context: list[Passage] = []
        pre_retrieval: list[Passage] = []

        pre_prompt = self.templates.build(question)
        pre_state = self._state(question, "", None, -1, pre_prompt, base_query)
        pre = self.trigger.check_question(pre_state)
        costs.retriever_calls += pre_state.retriever_calls
        if pre is not None and pre.fired and self.retriever is not None and retrievals < cfg.max_retrievals:
            pre_retrieval = context = self._reuse_or_retrieve(pre_state, costs)
            retrievals += 1

        accepted = ""
        steps: list[StepTrace] = []
        stop_reason, stop_hit, spent = "step budget", None, 0
        for index in range(cfg.max_steps):
            budget = None if cfg.answer_tokens is None else cfg.answer_tokens - spent
            if budget is not None and budget <= 0:
                stop_reason = "token budget"
                break
            # no retrieval possible: the draft will be accepted whatever the trigger says, so stream it
            final_stream = None
            if decode is not None and (self.retriever is None or retrievals >= cfg.max_retrievals):
                final_stream = StepStream(decode, stops, feed)
            draft, prompt = self._draft(question, context, accepted, history, final_stream, budget, index)
            if index > 0 and draft.finished and not draft.text.strip():
                stop_reason = "end of answer"  # the model ended the answer: nothing left to check or retrieve for
                break
            query = form_query(base_query, draft, getattr(self.lm, "detokenize", None), cfg.mask_below)
            state = self._state(question, accepted, draft, index, prompt, query)
            signal: Signal = self.trigger.score(state)
            costs.retriever_calls += state.retriever_calls  # searches a trigger made to decide
            trace = StepTrace(index=index, draft=step_text(draft, cfg.answer_stops), signal=signal, fired=signal.fired,
                              draft_tokens=_token_table(draft))
            final = draft
            if signal.fired and self.retriever is not None and retrievals < cfg.max_retrievals:
                trace.query = query
                trace.passages = self._reuse_or_retrieve(state, costs)
                retrievals += 1
                if trace.passages:
                    context = trace.passages
                    final_stream = StepStream(decode, stops, feed) if decode is not None else None
                    final, _ = self._draft(question, context, accepted, history, final_stream, budget, index)
            text = step_text(final, cfg.answer_stops)
            trace.generation = final
            if final_stream is not None:
                final_stream.finish(text)
            elif feed is not None:
                feed(text)
            hit = first_stop(accepted + text, cfg.answer_stops)  # the caller's stop may span two steps
            whole = accepted + text if hit is None else (accepted + text)[:hit[0]]
            trace.text, accepted = whole[len(accepted):], whole
            steps.append(trace)
            spent += len(final.token_ids)
            stop_hit = hit[1] if hit else (final.stop if final.stop in cfg.answer_stops else None)
            if stop_hit is not None:
                stop_reason = "stop string"
                break
            if final.finished:
                stop_reason = "end of answer"
                break
            if not trace.text.strip():
                stop_reason = "empty step"
                break
        if held is not None:
            held.finish(accepted)
        usage = self.lm.usage.since(before)
        costs.lm_calls, costs.prompt_tokens, costs.generated_tokens = usage.calls, usage.prompt_tokens, usage.generated_tokens
        costs.seconds = time.perf_counter() - t0
        return Answer(question=question, text=accepted.strip(), steps=steps, costs=costs, pre_check=pre,
                      pre_retrieval=pre_retrieval, trigger=getattr(self.trigger, "name", type(self.trigger).__name__),
                      stop_reason=stop_reason, stop_string=stop_hit)
