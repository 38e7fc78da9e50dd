"""The step-wise adaptive retrieval loop (docs/design.md, "Data flow (one question)").

    question ─► [check on the question alone] ─► for each step (a sentence or a line, rag/models/steps.py):
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

import time
from typing import Callable, Sequence

from rag.loop.batch import DEFAULT_BATCH_SIZE, iter_answers
from rag.loop.config import LoopConfig
from rag.loop.prompts import PromptTemplates
from rag.loop.run import QuestionRun
from rag.loop.stepper import Stepper
from rag.loop.streaming import AnswerText, StepStream, StopHold, can_stream
from rag.loop.trace import Answer
from rag.models.lm import Generation, LanguageModel, Prompt
from retrievers.base import Passage, Retriever
from triggers.base import StepState, Trigger


class AdaptiveRAG:
    """Answer questions, retrieving only when the trigger says the model does not know.

    A driver: `answer` builds a question's run (`rag.loop.run.QuestionRun`) and feeds it drafts and
    searches made by the stepper (`rag.loop.stepper.Stepper`); `answer_many` drives many runs in
    lock-step (rag/loop/batch.py). The per-step API (`step_prompt`, `draft`, `step_state`) is the
    stepper's, here for the benchmark runner and batched callers.
    """

    def __init__(self, lm: LanguageModel, retriever: Retriever | None, trigger: Trigger,
                 templates: PromptTemplates | None = None, config: LoopConfig | None = None) -> None:
        self.stepper = Stepper(lm, retriever, trigger, templates or PromptTemplates.for_model(lm),
                               config or LoopConfig())
        self.lm, self.retriever, self.trigger = lm, retriever, trigger
        self.templates, self.config = self.stepper.templates, self.stepper.config

    # -- one step (public: the benchmark runner and batched callers use these) -------------------
    def step_prompt(self, question: str, context: Sequence[Passage] = (), accepted: str = "",
                    history: Sequence[tuple[str, str]] = ()) -> Prompt:
        """The prompt that drafts (or, with passages in ``context``, regenerates) the next step."""
        return self.stepper.prompt(question, context, accepted, history)

    def draft(self, prompts: Sequence[Prompt], stream: StepStream | None = None,
              budget: int | None = None) -> list[Generation]:
        """Next steps for ``prompts`` in one `generate` call (`Stepper.draft`)."""
        return self.stepper.draft(prompts, stream, budget)

    def step_state(self, question: str, accepted: str, draft: Generation | None, index: int, prompt: Prompt,
                   query: str | None = None) -> StepState:
        """What the trigger reads about a step (`Stepper.state`)."""
        return self.stepper.state(question, accepted, draft, index, prompt, query)

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
        steps = self.stepper
        run = QuestionRun(steps, question, history, retrieval_query)
        cfg = self.config
        out = AnswerText(on_text) if on_text is not None else None
        held = StopHold(out.feed, cfg.answer_stops) if out is not None and cfg.answer_stops else None
        feed = held.feed if held is not None else (out.feed if out is not None else None)
        streaming = out is not None and can_stream(self.lm)
        t0 = time.perf_counter()
        before = self.lm.usage.snapshot()

        def stream() -> StepStream | None:
            return steps.stream(feed) if streaming and feed is not None else None

        run.check()
        if run.search is not None:
            run.found(steps.retrieve(run.search, run.costs))
        while (step := run.next_step()) is not None:
            prompt, budget = step
            # no retrieval possible: the draft will be accepted whatever the trigger says, so stream it
            final_stream = stream() if not run.can_retrieve else None
            draft = steps.draft([prompt], final_stream, budget)[0]
            run.take_draft(draft, prompt)
            if run.done:
                break
            if run.search is not None:
                run.found(steps.retrieve(run.search, run.costs))
            final = draft
            if run.regenerate is not None:
                final_stream = stream()
                final = steps.draft([run.regenerate], final_stream, budget)[0]
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
        """Answer many questions, ``batch_size`` of them decoded together step by step (rag/loop/batch.py):
        greedy answers equal `answer`'s, in the order of ``questions``. ``retrieval_queries``: per
        question, what `answer`'s ``retrieval_query`` would be; ``progress(done, total)`` after each answer."""
        out: list[Answer | None] = [None] * len(questions)
        for done, (i, answer) in enumerate(iter_answers(self.stepper, questions, batch_size=batch_size,
                                                        retrieval_queries=retrieval_queries), 1):
            out[i] = answer
            if progress is not None:
                progress(done, len(questions))
        return [a for a in out if a is not None]
