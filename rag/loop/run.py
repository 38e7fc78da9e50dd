"""One question's way through the loop (rag/loop/adaptive.py's docstring) as a state machine that a driver feeds.

The run decides, asking the stepper (rag/loop/stepper.py) for prompts and step states; the driver
generates and searches with the same stepper. Calls go one way: the run never calls its driver.
`AdaptiveRAG.answer` drives one run and streams
its text; `rag.loop.batch.iter_answers` drives many in lock-step (one draft call for every active run,
one search for every run that fired, one regeneration call). Both make the same decisions because
they are the same code, so a batched answer's trace equals the one-by-one answer's.

A driver's round, per run:

    check()                          once, before the first step (the check on the question alone)
    search set?  ─► found(passages)  the driver searched ``search`` (a trigger may have already)
    next_step() ─► (prompt, budget)  None once the answer has ended
    take_draft(draft)                may end the answer (the model stopped, or repeats a step)
    search set?  ─► found(passages)
    regenerate set? the driver regenerates the step with it, else the draft is final
    accept(final(text))              ``final`` swaps in the abstention where the loop abstains

With a relevance gate (``LoopConfig.relevance_gate``), `found` keeps only the passages relevant to
the question; when none is left the step keeps its draft — or, with ``abstain``, answers ABSTENTION
and ends the answer. A question check whose search finds nothing relevant drafts closed-book, and
the step's own trigger decides again.
"""
from __future__ import annotations

from typing import Any, Sequence

from rag.errors import UsageError
from rag.loop.query import form_query
from rag.loop.stepper import Stepper
from rag.loop.trace import Answer, Costs, StepTrace
from rag.models.lm import Generation, Prompt
from rag.models.steps import REPETITION, first_stop
from retrievers.base import Passage
from retrievers.relevance import RELEVANCE_KEY
from triggers.base import Signal, StepState


ABSTENTION = "I could not find this in the documents."


def _token_table(g: Generation) -> list[dict]:
    return [{"token": t, "logprob": lp, "entropy": h} for t, lp, h in zip(g.tokens, g.logprobs, g.entropies)]


class QuestionRun:
    """The state of one answer between the driver's calls (see the module docstring)."""

    def __init__(self, stepper: Stepper, question: str, history: Sequence[tuple[str, str]] = (),
                 retrieval_query: str | None = None) -> None:
        if not isinstance(question, str) or not question.strip():
            raise UsageError("question is empty")
        self.stepper = stepper
        self.question = question.strip()
        self.history = history
        self.base_query = retrieval_query.strip() if retrieval_query and retrieval_query.strip() else self.question
        self.costs = Costs()
        self.retrievals = 0
        self.context: list[Passage] = []
        self.pre: Signal | None = None
        self.pre_retrieval: list[Passage] = []
        self.pre_gate: dict[str, Any] | None = None
        self._abstain = False
        self.accepted = ""
        self.steps: list[StepTrace] = []
        self.stop_reason, self.stop_hit, self.spent = "step budget", None, 0
        self.done = False
        self.search: str | None = None  # a query the driver must search, then hand the passages to `found`
        self.regenerate: Prompt | None = None  # the step's prompt with passages: the driver regenerates with it
        self.draft: Generation | None = None  # the current step's draft
        self._trace: StepTrace | None = None

    @property
    def can_retrieve(self) -> bool:
        """Whether a fired trigger would still retrieve (a retriever and retrieval budget left)."""
        return self.stepper.retriever is not None and self.retrievals < self.stepper.config.max_retrievals

    def check(self) -> None:
        """The check on the question alone, before any draft; a fired check asks for a search."""
        st = self.stepper
        state = st.state(self.question, "", None, -1, st.templates.build(self.question), self.base_query)
        self.pre = st.trigger.check_question(state)
        self.costs.retriever_calls += state.retriever_calls
        if self.pre is not None and self.pre.fired and self.can_retrieve:
            self._retrieve_for(state)

    def _retrieve_for(self, state: StepState) -> None:
        """Reuse the passages a trigger already searched for this state's query, else ask the driver."""
        self.retrievals += 1
        searched = state.searched()
        if searched is not None:
            self.found(list(searched))
        else:
            self.search = state.query or state.question

    def found(self, passages: list[Passage]) -> None:
        """The passages of the pending search (those the relevance gate keeps): they become the
        context of this and later steps."""
        self.search = None
        passages, gate = self._gate(passages)
        if self._trace is None:  # the check before the first step
            self.pre_retrieval, self.pre_gate = passages, gate
            if passages:
                self.context = passages
            return
        self._trace.passages, self._trace.gate = passages, gate
        if passages:
            self.context = passages
            self.regenerate = self.stepper.prompt(self.question, self.context, self.accepted, self.history)
        elif gate is not None and self.stepper.config.abstain:
            self._abstain = True

    def _gate(self, passages: list[Passage]) -> tuple[list[Passage], dict[str, Any] | None]:
        """The passages the gate keeps, and what it did (None: no gate, or nothing to judge)."""
        gate = self.stepper.gate
        if gate is None or not passages:
            return passages, None
        scored = gate.score(self.base_query, passages)
        kept = gate.keep(scored)
        return kept, {"threshold": gate.threshold, "relevance": {p.id: p.metadata[RELEVANCE_KEY] for p in scored},
                      "kept": [p.id for p in kept], "nothing_relevant": not kept}

    def final(self, g: Generation) -> Generation:
        """The step's final text: ``g`` (the draft or its regeneration), or the abstention when the
        trigger fired and the gate found nothing relevant (with ``abstain``)."""
        return Generation(text=ABSTENTION, finished=True) if self._abstain else g

    def next_step(self) -> tuple[Prompt, int | None] | None:
        """The prompt and token budget (None: the step's own) of the next draft; None once the answer has ended."""
        if self.done:
            return None
        return self.stepper.prompt(self.question, self.context, self.accepted, self.history), self._budget()

    def _budget(self) -> int | None:
        """Tokens left of the caller's answer budget (None: no such budget)."""
        cfg = self.stepper.config
        return None if cfg.answer_tokens is None else cfg.answer_tokens - self.spent

    def _check_budgets(self) -> None:
        """End the answer when no step may follow: the step budget (stop_reason stays "step budget"),
        then the caller's token budget."""
        budget = self._budget()
        if len(self.steps) >= self.stepper.config.max_steps:
            self.done = True
        elif budget is not None and budget <= 0:
            self._end("token budget")

    def take_draft(self, draft: Generation, prompt: Prompt) -> None:
        """Score the step's draft (``prompt`` drafted it); a fired trigger asks for a search."""
        st, index = self.stepper, len(self.steps)
        if index > 0 and not draft.text.strip():
            # nothing left to check or retrieve for: the model ended the answer, or its next step is blank (a
            # base model's line break before its next "Question:"; a server that cuts the stop string with it
            # returns no token at all, and an empty step must not fire where a one-token blank one does not)
            return self._end("end of answer" if draft.finished else "empty step")
        if index > 0 and draft.text.strip() in {s.text.strip() for s in self.steps}:
            return self._end(REPETITION)  # the step says again what an earlier one said: the model is looping
        query = form_query(self.base_query, draft, getattr(st.lm, "detokenize", None), st.config.mask_below)
        state = st.state(self.question, self.accepted, draft, index, prompt, query)
        signal = st.trigger.score(state)
        self.costs.retriever_calls += state.retriever_calls  # searches a trigger made to decide
        self.draft = draft
        self._trace = StepTrace(index=index, draft=draft.text, signal=signal, fired=signal.fired,
                                draft_tokens=_token_table(draft))
        if signal.fired and self.can_retrieve:
            self._trace.query = query
            self._retrieve_for(state)

    def accept(self, final: Generation) -> None:
        """The step's final text (the draft, or its regeneration with passages) joins the answer."""
        trace, stops = self._trace, self.stepper.config.answer_stops
        assert trace is not None, "accept() before take_draft()"
        trace.generation = final
        hit = first_stop(self.accepted + final.text, stops)  # the caller's stop may span two steps
        whole = self.accepted + final.text if hit is None else (self.accepted + final.text)[:hit[0]]
        trace.text, self.accepted = whole[len(self.accepted):], whole
        self.steps.append(trace)
        self._trace, self.draft, self.regenerate = None, None, None
        self.spent += len(final.token_ids)
        self.stop_hit = hit[1] if hit else (final.stop if final.stop in stops else None)
        if self._abstain:
            self._end("abstained")
        elif self.stop_hit is not None:
            self._end("stop string")
        elif final.finished:
            self._end("end of answer")
        elif final.stop == REPETITION:
            self._end(REPETITION)
        elif not trace.text.strip():
            self._end("empty step")
        else:
            self._check_budgets()

    def _end(self, reason: str) -> None:
        self.stop_reason, self.done = reason, True

    def answer(self) -> Answer:
        """The finished answer (the driver has filled in the LM costs and seconds)."""
        trigger = self.stepper.trigger
        return Answer(question=self.question, text=self.accepted.strip(), steps=self.steps, costs=self.costs,
                      pre_check=self.pre, pre_retrieval=self.pre_retrieval, pre_gate=self.pre_gate,
                      trigger=getattr(trigger, "name", type(trigger).__name__), stop_reason=self.stop_reason,
                      stop_string=self.stop_hit, backend=self.stepper.backend)
