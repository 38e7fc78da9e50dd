"""Many questions at once (docs/design.md, "Many questions at once"): the loop's steps in lock-step.

Each question is a `rag.loop.run.QuestionRun`, the same state machine `AdaptiveRAG.answer` drives, so a
batched answer makes the same decisions as a one-by-one answer. A round drafts every active question
in one ``generate`` call, scores each row's trigger on its own step state, searches for the rows that
fired in one `retrievers.base.retrieve_many`, and regenerates only those rows in one call. A question
that finishes leaves the batch and the next waiting one joins (after its question check), so the batch
stays full. Greedy answers equal one-by-one answers up to float ties that padding can move.

Costs per answer keep their meaning. ``lm_calls``: the calls the question took part in (one per
batched call, as if alone). The tokens and seconds of a batched call are split between its rows
(`split_call`): prompt tokens in proportion to each row's prompt, generated tokens and seconds in
proportion to each row's generated tokens plus the one that ended it; integer counts by largest
remainder, so the answers' costs add up to what the model counted. A search's seconds are split
evenly between its queries (one retriever call each); a trigger's own LM use and time are measured
around its call and charged to its question alone.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Callable, Iterator, Sequence

from rag.errors import UsageError
from rag.loop.run import QuestionRun
from rag.loop.stepper import Stepper
from rag.loop.trace import Answer, Costs
from rag.models.lm import Generation, Prompt, Usage
from retrievers.base import Passage, Retriever, retrieve_many

# questions decoded together by `answer_many`, `arag ask --questions` and `arag bench`. Measured with
# `python -m benchmarks.perf_batch --limit 64 --batch-sizes 1,4,8,16,32` (default model, 2 CPU cores):
# 1.93× sequential at 16, 1.98× at 32 for 1.7× the memory rise; docs/performance.md "Batched answering"
DEFAULT_BATCH_SIZE = 16


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` into integers that add up to it (largest remainder)."""
    whole = sum(weights)
    if whole <= 0:
        weights, whole = [1.0] * len(weights), float(len(weights))
    exact = [total * w / whole for w in weights]
    out = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: out[i] - exact[i])[: total - sum(out)]:
        out[i] += 1
    return out


def split_call(rows: Sequence[Generation], used: Usage, seconds: float) -> list[Costs]:
    """Each row's share of one batched ``generate`` call (the module docstring says how)."""
    made = [len(g.token_ids) + 1 for g in rows]
    prompt = _apportion(used.prompt_tokens, [g.prompt_tokens for g in rows])
    generated = _apportion(used.generated_tokens, made)
    return [Costs(lm_calls=1, prompt_tokens=p, generated_tokens=n, seconds=seconds * m / sum(made))
            for p, n, m in zip(prompt, generated, made)]


def draft_shares(stepper: Stepper, prompts: Sequence[Prompt], budget: int | None = None
                 ) -> tuple[list[Generation], list[Costs]]:
    """``stepper.draft(prompts)`` in one call, and each prompt's share of what it cost (`split_call`)."""
    if not prompts:
        return [], []
    before, t0 = stepper.lm.usage.snapshot(), time.perf_counter()
    gens = stepper.draft(prompts, None, budget)
    return gens, split_call(gens, stepper.lm.usage.since(before), time.perf_counter() - t0)


def search_shares(retriever: Retriever, queries: Sequence[str], k: int) -> tuple[list[list[Passage]], list[Costs]]:
    """One search for all ``queries`` (`retrieve_many`), and each query's share: one retriever call
    and an even part of the seconds."""
    if not queries:
        return [], []
    t0 = time.perf_counter()
    found = retrieve_many(retriever, queries, k)
    seconds = (time.perf_counter() - t0) / len(queries)
    return found, [Costs(retriever_calls=1, seconds=seconds) for _ in queries]


def _charge(run: QuestionRun, share: Costs) -> None:
    c = run.costs
    c.lm_calls += share.lm_calls
    c.prompt_tokens += share.prompt_tokens
    c.generated_tokens += share.generated_tokens
    c.seconds += share.seconds


class _Driver:
    """Feeds a set of runs: every method takes the runs of one round and does one batched thing."""

    def __init__(self, stepper: Stepper) -> None:
        self.stepper = stepper

    def alone(self, run: QuestionRun, work: Callable[[], None]) -> None:
        """Per-question work (a trigger's check or score), its LM use and time charged to ``run``."""
        before, t0 = self.stepper.lm.usage.snapshot(), time.perf_counter()
        work()
        used = self.stepper.lm.usage.since(before)
        _charge(run, Costs(lm_calls=used.calls, prompt_tokens=used.prompt_tokens,
                           generated_tokens=used.generated_tokens, seconds=time.perf_counter() - t0))

    def search(self, runs: Sequence[QuestionRun]) -> None:
        """One search for every run that asked for one."""
        runs = [r for r in runs if r.search is not None]
        if not runs:
            return
        found, shares = search_shares(self.stepper.retriever, [r.search for r in runs], self.stepper.config.k)
        for run, passages, share in zip(runs, found, shares):
            run.costs.retriever_calls += share.retriever_calls
            run.costs.seconds += share.seconds
            run.found(passages)

    def generate(self, jobs: Sequence[tuple[QuestionRun, Prompt, int | None]]) -> list[Generation]:
        """One ``draft`` call per distinct token budget (one call unless the caller set ``answer_tokens``)."""
        out: list[Generation | None] = [None] * len(jobs)
        for budget in dict.fromkeys(b for _, _, b in jobs):
            idx = [i for i, job in enumerate(jobs) if job[2] == budget]
            gens, shares = draft_shares(self.stepper, [jobs[i][1] for i in idx], budget)
            for i, g, share in zip(idx, gens, shares):
                _charge(jobs[i][0], share)
                out[i] = g
        return [g for g in out if g is not None]

    def round(self, runs: Sequence[QuestionRun]) -> None:
        """One step of every run: draft, score, search, regenerate, accept."""
        jobs = [(run, *step) for run in runs if (step := run.next_step()) is not None]
        for (run, prompt, _), draft in zip(jobs, self.generate(jobs)):
            self.alone(run, partial(run.take_draft, draft, prompt))
        live = [job for job in jobs if not job[0].done]
        self.search([run for run, _, _ in live])
        regen = [(run, run.regenerate, budget) for run, _, budget in live if run.regenerate is not None]
        finals = {id(run): g for (run, _, _), g in zip(regen, self.generate(regen))}
        for run, _, _ in live:
            run.accept(run.final(finals.get(id(run), run.draft)))


def iter_answers(stepper: Stepper, questions: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
                 retrieval_queries: Sequence[str | None] | None = None) -> Iterator[tuple[int, Answer]]:
    """(index into ``questions``, answer) as each answer finishes — not in order; see the module docstring."""
    check_batch_size(batch_size)
    if retrieval_queries is not None and len(retrieval_queries) != len(questions):
        raise UsageError(f"retrieval_queries has {len(retrieval_queries)} entries for {len(questions)} questions")
    queries = list(retrieval_queries) if retrieval_queries is not None else [None] * len(questions)
    runs = [QuestionRun(stepper, q, retrieval_query=rq) for q, rq in zip(questions, queries)]  # checks every question first
    driver, waiting, active = _Driver(stepper), list(range(len(runs)))[::-1], []
    while waiting or active:
        joining = []
        while waiting and len(active) + len(joining) < batch_size:
            i = waiting.pop()
            driver.alone(runs[i], runs[i].check)
            joining.append(i)
        driver.search([runs[i] for i in joining])
        active += joining
        driver.round([runs[i] for i in active])
        for i in [i for i in active if runs[i].done]:
            active.remove(i)
            yield i, runs[i].answer()
