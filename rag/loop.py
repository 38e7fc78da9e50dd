"""The step-wise adaptive retrieval loop (docs/design.md, "Data flow (one question)").

    question ─► [check on the question alone] ─► for each step (a sentence or a line, rag/steps.py):
        draft greedily (token log-probs and entropies kept) ─► trigger scores the draft
        ─► fired? no: accept the draft
                  yes: query = question + draft with unsure tokens masked (FLARE)
                       ─► retrieve top-k ─► regenerate the step with the passages ─► accept
    ─► Answer(text, trace, costs)

Passages retrieved for a step stay in the prompt for the following drafts (as in FLARE), so a
later step is drafted with the evidence an earlier one needed. An answer ends when the model ends
it, at the step budget, or when a step only repeats itself (a degenerate loop, or a step that was
already accepted), which would otherwise run to the budget.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rag.errors import UsageError
from rag.lm import Generation, LanguageModel, Prompt
from rag.prompts import PromptTemplates
from rag.steps import REPETITION, SentenceEnd, StepEnd, loop_end, truncate
from rag.batch import DEFAULT_BATCH_SIZE, iter_answers
from rag.run import QuestionRun
from rag.streaming import AnswerText, StepStream, StopHold, accepts, can_stream
from rag.trace import Answer, Costs
from retrievers.base import Passage, Retriever, check_k
from retrievers.relevance import RelevanceGate, check_gate_threshold
from triggers.base import StepState, Trigger, draft_top_logprobs

# Defaults of the repetition controls, chosen on the default model (SmolLM2-135M-Instruct): with passages
# in the prompt it looped ("Paris, the City of the City of …") without them; no_repeat_ngram_size=3 gave
# the cleanest text, repetition_penalty=1.2 pushed it off the passages' facts. See docs/concepts.md
# "Repetition". 1.0 / 0 switch them off.
REPETITION_PENALTY = 1.0
NO_REPEAT_NGRAM_SIZE = 3


@dataclass
class LoopConfig:
    k: int = 3  # passages per retrieval
    max_steps: int = 6  # steps (sentences or lines) per answer
    max_retrievals: int = 3  # retrieval budget per answer (pre-generation check included)
    step_tokens: int = 48  # token budget of one step
    mask_below: float = 0.4  # FLARE: draft tokens below this probability are left out of the query
    seed: int | None = 0  # for triggers that sample, and for drafts when temperature > 0
    sentence_steps: bool = True  # a step ends at a sentence boundary or a line break (rag/steps.py)
    stops: Sequence[str] = ()  # extra stop strings that end a step (excluded from the text)
    top_logprobs: int = 0  # > 0: keep the k most likely tokens per position (models that support it)
    repetition_penalty: float = REPETITION_PENALTY  # transformers' RepetitionPenaltyLogitsProcessor; 1.0 = off
    no_repeat_ngram_size: int = NO_REPEAT_NGRAM_SIZE  # transformers' NoRepeatNGramLogitsProcessor; 0 = off
    # what a caller (an OpenAI request) asks of the returned answer: a token budget over all accepted
    # steps, stop strings that end the answer (excluded from it), and sampling for drafts and regenerations
    answer_tokens: int | None = None
    answer_stops: Sequence[str] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    # drop retrieved passages whose relevance to the question (retrievers/relevance.py) is below this;
    # with none left the step keeps its draft. None = off. ``abstain``: then answer ABSTENTION instead
    relevance_gate: float | None = None
    abstain: bool = False

    def __post_init__(self) -> None:
        check_k(self.k)
        if self.relevance_gate is not None:
            self.relevance_gate = check_gate_threshold(self.relevance_gate)
        if self.abstain and self.relevance_gate is None:
            raise UsageError("abstain needs the relevance gate (it abstains when the gate finds nothing relevant)")
        for name in ("max_steps", "step_tokens"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retrievals < 0:
            raise UsageError(f"max_retrievals must be >= 0, got {self.max_retrievals}")
        if self.answer_tokens is not None and self.answer_tokens < 1:
            raise UsageError(f"answer_tokens must be >= 1, got {self.answer_tokens}")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0):
            raise UsageError(f"repetition_penalty must be a positive number, got {self.repetition_penalty}")
        if self.no_repeat_ngram_size < 0:
            raise UsageError(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")


class AdaptiveRAG:
    """Answer questions, retrieving only when the trigger says the model does not know.

    The per-step API (`step_prompt`, `draft`, `step_state`) is what a question's run (`rag.run.QuestionRun`)
    is made of and what the benchmark runner calls directly; `answer` drives one run, `answer_many`
    many in lock-step, `draft` decoding every active question's step in one call.
    """

    def __init__(self, lm: LanguageModel, retriever: Retriever | None, trigger: Trigger,
                 templates: PromptTemplates | None = None, config: LoopConfig | None = None) -> None:
        self.lm = lm
        self.retriever = retriever
        self.trigger = trigger
        self.templates = templates or PromptTemplates()
        self.config = config or LoopConfig()
        self.step_end: StepEnd | None = SentenceEnd() if self.config.sentence_steps else None
        # where the model ends steps itself; otherwise the step is cut after generation (HTTP backends)
        self._native_step_end = accepts(lm.generate, "step_end")
        self._options = self._generate_options()
        self.gate = RelevanceGate(self.config.relevance_gate) if self.config.relevance_gate is not None else None

    def _generate_options(self) -> dict[str, Any]:
        """Keyword arguments of ``lm.generate`` for a step, beyond the prompt and budget (drafts and samples)."""
        cfg, opts = self.config, {}
        if self.step_end is not None and self._native_step_end:
            opts["step_end"] = self.step_end
        if accepts(self.lm.generate, "stop_loops"):
            opts["stop_loops"] = True
        for name in ("repetition_penalty", "no_repeat_ngram_size"):
            value, off = getattr(cfg, name), (1.0 if name == "repetition_penalty" else 0)
            if value != off:
                if not accepts(self.lm.generate, name):
                    raise UsageError(f"{name} is not supported by the model {getattr(self.lm, 'name', '')!r}")
                opts[name] = value
        return opts

    # -- one step (public: the benchmark runner and batched callers use these) -------------------
    def step_prompt(self, question: str, context: Sequence[Passage] = (), accepted: str = "",
                    history: Sequence[tuple[str, str]] = ()) -> Prompt:
        """The prompt that drafts (or, with passages in ``context``, regenerates) the next step."""
        prompt = self.templates.build(question, context, prefix=accepted)
        if history:  # earlier turns of a conversation come before this question (rag/conversation.py)
            prompt = Prompt(messages=tuple(history) + prompt.messages, prefix=prompt.prefix)
        return prompt

    def draft(self, prompts: Sequence[Prompt], stream: StepStream | None = None,
              budget: int | None = None) -> list[Generation]:
        """Next steps for ``prompts`` (one `generate` call; greedy unless the config samples), each
        ending at a step boundary, with token statistics; ``stream`` receives the first prompt's text
        as it grows; ``budget`` caps the step's tokens below ``step_tokens`` (what is left of an answer's)."""
        cfg = self.config
        extra: dict[str, Any] = dict(self._options)
        tops = max(cfg.top_logprobs, draft_top_logprobs(self.trigger))  # what the caller or the trigger reads
        if tops > 0 and accepts(self.lm.generate, "top_logprobs"):
            extra["top_logprobs"] = tops
        if stream is not None:
            extra["on_text"] = stream.on_text
        if cfg.temperature > 0:
            extra.update(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed)
        gens = [g[0] for g in self.lm.generate(list(prompts), max_new_tokens=min(cfg.step_tokens, budget or cfg.step_tokens),
                                                stop=self._stops(), **extra)]
        return [self._cut(g) for g in gens]

    def _stops(self) -> list[str] | None:
        """Stop strings of a step: the config's and the caller's (which also end the answer)."""
        return list(dict.fromkeys([*self.config.stops, *(s for s in self.config.answer_stops if s)])) or None

    def _cut(self, g: Generation) -> Generation:
        """End a step where the model could not end it itself (no ``step_end`` / ``stop_loops`` support)."""
        detok = getattr(self.lm, "detokenize", None) or "".join
        if self.step_end is not None and not self._native_step_end and not g.finished and g.stop is None:
            end = self.step_end.end(g.text)
            if end is not None:
                g = truncate(g, end, detok)
        loop_at = loop_end(g.token_ids) if "stop_loops" not in self._options and g.stop is None else None
        if loop_at is not None:
            g = truncate(g, len(detok(g.tokens[:loop_at])), detok, stop=REPETITION)
        return g

    def step_state(self, question: str, accepted: str, draft: Generation | None, index: int, prompt: Prompt,
                   query: str | None = None) -> StepState:
        """What the trigger reads about a step (``draft`` None: the check on the question alone);
        ``query``: what the loop retrieves with if this step fires (a trigger may search it first)."""
        return StepState(question=question, accepted=accepted, draft=draft, step_index=index, sampler=self.lm,
                         prompt=prompt, max_new_tokens=self.config.step_tokens, stop=self._stops(),
                         seed=self.config.seed, options=dict(self._options), retriever=self.retriever,
                         query=query, k=self.config.k)

    def _retrieve(self, query: str, costs: Costs) -> list[Passage]:
        if self.retriever is None:
            return []
        costs.retriever_calls += 1
        return self.retriever.retrieve(query, self.config.k)

    # -- the loop --------------------------------------------------------------------------
    def answer(self, question: str, *, history: Sequence[tuple[str, str]] = (), retrieval_query: str | None = None,
               on_text: Callable[[str], None] | None = None) -> Answer:
        """Answer one question.

        ``history``: earlier (role, content) turns put before the question in every prompt;
        ``retrieval_query``: what to retrieve with instead of the question (a conversation's condensed
        query); ``on_text``: called with accepted answer text as soon as it is final — never with a
        draft the trigger rejects — and the pieces add up to ``Answer.text``. A step regenerated with
        passages (or drafted when no retrieval is possible any more) streams token by token when the
        model supports ``on_text``; a draft that the trigger accepts arrives as one piece.
        """
        run = QuestionRun(self, question, history, retrieval_query)
        cfg = self.config
        out = AnswerText(on_text) if on_text is not None else None
        held = StopHold(out.feed, cfg.answer_stops) if out is not None and cfg.answer_stops else None
        feed = held.feed if held is not None else (out.feed if out is not None else None)
        streaming = out is not None and can_stream(self.lm)
        t0 = time.perf_counter()
        before = self.lm.usage.snapshot()

        def stream() -> StepStream | None:
            return StepStream(feed, self._stops() or (), self.step_end) if streaming else None

        run.check()
        if run.search is not None:
            run.found(self._retrieve(run.search, run.costs))
        while (step := run.next_step()) is not None:
            prompt, budget = step
            # no retrieval possible: the draft will be accepted whatever the trigger says, so stream it
            final_stream = stream() if not run.can_retrieve else None
            draft = self.draft([prompt], final_stream, budget)[0]
            run.take_draft(draft, prompt)
            if run.done:
                break
            if run.search is not None:
                run.found(self._retrieve(run.search, run.costs))
            final = draft
            if run.regenerate is not None:
                final_stream = stream()
                final = self.draft([run.regenerate], final_stream, budget)[0]
            final = run.final(final)
            if final_stream is not None:
                final_stream.finish(final.text)
            elif feed is not None:
                feed(final.text)
            run.accept(final)
        if held is not None:
            held.finish(run.accepted)
        usage, costs = self.lm.usage.since(before), run.costs
        costs.lm_calls, costs.prompt_tokens, costs.generated_tokens = usage.calls, usage.prompt_tokens, usage.generated_tokens
        costs.seconds = time.perf_counter() - t0
        return run.answer()

    def answer_many(self, questions: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
                    retrieval_queries: Sequence[str | None] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> list[Answer]:
        """Answer many questions, ``batch_size`` of them decoded together step by step (rag/batch.py):
        greedy answers equal `answer`'s, in the order of ``questions``. ``retrieval_queries``: per
        question, what `answer`'s ``retrieval_query`` would be; ``progress(done, total)`` after each answer."""
        out: list[Answer | None] = [None] * len(questions)
        for done, (i, answer) in enumerate(iter_answers(self, questions, batch_size=batch_size,
                                                        retrieval_queries=retrieval_queries), 1):
            out[i] = answer
            if progress is not None:
                progress(done, len(questions))
        return [a for a in out if a is not None]
