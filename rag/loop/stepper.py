"""The mechanics of one step: its prompt, its draft (or regeneration), what the trigger reads about it,
and the search a fired step makes.

The `Stepper` holds the loop's collaborators (model, retriever, trigger, templates, config) and knows
nothing of questions in flight: a question's run (`rag.loop.run.QuestionRun`) asks it for prompts and
step states, and a driver (`rag.loop.adaptive.AdaptiveRAG` for one question, `rag.loop.batch` for many)
asks it for drafts and searches. Calls only go down to it, so the walk of a question never comes
back up into the driver.
"""
from __future__ import annotations

from typing import Any, Sequence

from rag.errors import UsageError
from rag.loop.config import LoopConfig
from rag.loop.prompts import PromptTemplates
from rag.loop.streaming import Sink, StepStream, accepts
from rag.loop.trace import Costs
from rag.models.lm import Generation, LanguageModel, Prompt
from rag.models.steps import REPETITION, SentenceEnd, StepEnd, loop_end, truncate
from retrievers.base import Passage, Retriever
from retrievers.relevance import RelevanceGate
from triggers.base import StepState, Trigger, draft_top_logprobs


class Stepper:
    """Prompts, drafts, step states and searches for the loop (the module docstring says who calls it)."""

    def __init__(self, lm: LanguageModel, retriever: Retriever | None, trigger: Trigger,
                 templates: PromptTemplates, config: LoopConfig) -> None:
        self.lm = lm
        self.retriever = retriever
        self.trigger = trigger
        self.templates = templates
        self.config = config
        self.step_end: StepEnd | None = SentenceEnd() if config.sentence_steps else None
        # where the model ends steps itself; otherwise the step is cut after generation (HTTP backends)
        self._native_step_end = accepts(lm.generate, "step_end")
        self._options = self._generate_options()
        self.gate = RelevanceGate(config.relevance_gate) if config.relevance_gate is not None else None
        self.backend = self._backend()

    def _backend(self) -> dict[str, Any] | None:
        """An HTTP model's capabilities (asked once per model), for the trace; multi-step answers refused up
        front on a server that cannot continue one, instead of failing at the second step."""
        capabilities = getattr(self.lm, "capabilities", None)
        if not callable(capabilities):
            return None
        caps = capabilities(continuation=self.config.max_steps > 1)
        if caps.continuation is None and self.config.max_steps > 1:
            raise UsageError(caps.missing_continuation(getattr(self.lm, "base_url", self.lm.name)))
        return caps.to_dict()

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

    def prompt(self, question: str, context: Sequence[Passage] = (), accepted: str = "",
               history: Sequence[tuple[str, str]] = ()) -> Prompt:
        """The prompt that drafts (or, with passages in ``context``, regenerates) the next step."""
        prompt = self.templates.build(question, context, prefix=accepted)
        if history:  # earlier turns of a conversation come before this question (rag/apps/conversation.py)
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
                                                stop=self.stops(), **extra)]
        return [self._cut(g) for g in gens]

    def stops(self) -> list[str] | None:
        """Stop strings of a step: the config's, the template's and the caller's (which also end the answer)."""
        return list(dict.fromkeys([*self.config.stops, *self.templates.stops,
                                   *(s for s in self.config.answer_stops if s)])) or None

    def stream(self, feed: Sink) -> StepStream:
        """A stream of one step's text into ``feed`` that holds back what a stop or step end may still cut."""
        return StepStream(feed, self.stops() or (), self.step_end)

    def _cut(self, g: Generation) -> Generation:
        """End a step where the model could not end it itself (no ``step_end`` / ``stop_loops`` support)."""
        detok = getattr(self.lm, "detokenize", None) or "".join
        # a boundary before the end-of-sequence or a stop string ends the step there, as a model that checks
        # per token would have stopped at it: the rest is the next step's (drafted again)
        if self.step_end is not None and not self._native_step_end:
            # the text as the model wrote it: a stop string the server cut off was seen by the in-process rule
            # ("France.\n\nQuestion:" ends the step after "France." there; the server returns "France.\n")
            seen = g.text + (g.stop if g.stop and g.stop != REPETITION else "")
            end = self.step_end.end(seen)
            if end is not None and end < len(g.text):
                g = truncate(g, end, detok)
        loop_at = loop_end(g.token_ids) if "stop_loops" not in self._options and g.stop is None else None
        if loop_at is not None:
            g = truncate(g, len(detok(g.tokens[:loop_at])), detok, stop=REPETITION)
        return g

    def state(self, question: str, accepted: str, draft: Generation | None, index: int, prompt: Prompt,
              query: str | None = None) -> StepState:
        """What the trigger reads about a step (``draft`` None: the check on the question alone);
        ``query``: what the loop retrieves with if this step fires (a trigger may search it first)."""
        return StepState(question=question, accepted=accepted, draft=draft, step_index=index, sampler=self.lm,
                         prompt=prompt, max_new_tokens=self.config.step_tokens, stop=self.stops(),
                         seed=self.config.seed, options=dict(self._options), retriever=self.retriever,
                         query=query, k=self.config.k)

    def retrieve(self, query: str, costs: Costs) -> list[Passage]:
        """The top ``k`` passages for ``query`` (none without a retriever), one retriever call counted in ``costs``."""
        if self.retriever is None:
            return []
        costs.retriever_calls += 1
        return self.retriever.retrieve(query, self.config.k)
