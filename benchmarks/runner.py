"""The benchmark runner: per question, compute every expensive thing once, then derive the policies.

For single-step answers (``max_steps=1``, the default for short-answer sets) a policy's answer is
one yes/no away from two cached generations, so per question the runner computes, exactly as
`AdaptiveRAG` with ``LoopConfig(max_steps=1)`` would:

1. the closed-book draft (``AdaptiveRAG.step_prompt`` + ``draft``, greedy, token statistics kept);
2. every requested trigger's signal on the *same* step state (``AdaptiveRAG.step_state``), so N
   samples drawn for one trigger are reused by the next;
3. the retrieval-augmented answer: FLARE masked query (`rag.loop.query.form_query`) → top-k →
   regenerate the step with the passages;
4. for triggers with a question check (QuCo): the check, and when it fires the pre-retrieval
   branch (retrieve with the question → draft with those passages → the trigger scores that draft
   → when it fires, masked query → retrieve → regenerate), i.e. the loop's path after a fired check.

Policy(θ) = RAG answer if the score crosses θ, else the closed-book draft (`benchmarks.policies`);
a whole threshold sweep costs nothing more. With ``max_steps > 1`` the decisions change the text
that follows, so every policy runs for real through `AdaptiveRAG` instead.

Results are appended to ``results.jsonl`` one flushed line per question; a rerun skips the ids
already there, so a killed run resumes with nothing lost or duplicated.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from benchmarks.costs import LedgerState, Meter, add, zero
from benchmarks.datasets import QAExample
from benchmarks.gate_drafts import GateDrafts
from corpora.atomic import complete_lines, write_json_atomic
from corpora.jsonfloat import json_float
from rag.loop import AdaptiveRAG, LoopConfig
from rag.loop.batch import draft_shares, search_shares
from rag.loop.query import form_query
from retrievers.base import Passage, Retriever
from triggers import Never, TokenConfidence
from triggers.base import Signal, Trigger, draft_top_logprobs

# extra signals from the draft's own statistics, recorded for every question (they cost nothing)
FREE_AGGREGATIONS = ("min_prob", "mean_logprob", "max_entropy", "sequence_prob", "mean_entropy")
RESULTS, MANIFEST = "results.jsonl", "run.json"


class BenchError(ValueError):
    """Bad benchmark input: an unknown policy, or a run folder that holds another configuration."""


@dataclass
class BenchConfig:
    """Everything that determines the per-question results; a resumed run must match it."""

    dataset: str
    policies: tuple[str, ...]
    split: str | None = None
    relation: str | None = None
    shuffle_seed: int | None = 0
    retriever: str = "bm25"
    corpus: str = "own"
    k: int = 3
    model: str = "default"
    max_steps: int = 1
    seed: int = 0
    trigger_options: dict[str, Any] = field(default_factory=dict)
    # a user's QA file (``dataset`` is then its name): absolute path and content hash, so an edited
    # file is not resumed against results of the old questions
    questions: str | None = None
    questions_sha256: str | None = None
    # what ``corpus`` names when it is not a shared set's: corpus files, an index folder, an ES index
    sources: tuple[str, ...] | None = None
    # the relevance gate of the ``NAME@gate`` policies: its threshold; ``gate_sweep``: keep the drafts of
    # every number of kept passages (what `arag calibrate --relevance-gate` sweeps); ``abstain``: answer
    # ABSTENTION where the gate keeps nothing
    relevance_gate: float | None = None
    gate_sweep: bool | None = None
    abstain: bool | None = None

    def loop_config(self) -> LoopConfig:
        return LoopConfig(k=self.k, max_steps=self.max_steps, seed=self.seed)

    def gated_loop_config(self) -> LoopConfig:
        """The loop of the ``NAME@gate`` policies."""
        return replace(self.loop_config(), relevance_gate=self.relevance_gate, abstain=bool(self.abstain))

    def key(self) -> dict[str, Any]:
        """The settings as JSON; the optional fields only when set, so run folders made before they
        existed still resume."""
        fields = {k: v for k, v in asdict(self).items() if v is not None or k not in OPTIONAL_KEYS}
        return results_key(json.loads(json.dumps(fields, default=str)))


def results_key(key: dict[str, Any]) -> dict[str, Any]:
    """The settings that determine the results. A gate sweep keeps a draft for every number of kept
    passages, so its threshold only picks among them when the report is made (`arag bench
    --report-only --relevance-gate T` reports another threshold from the same run); a single-step
    answer abstains exactly where the gate keeps nothing, so ``abstain`` is a report setting there too."""
    report_only = {"relevance_gate"} if key.get("gate_sweep") else set()
    if key.get("max_steps", 1) == 1:
        report_only.add("abstain")
    return {k: v for k, v in key.items() if k not in report_only}


OPTIONAL_KEYS = ("questions", "questions_sha256", "sources", "relevance_gate", "gate_sweep", "abstain")


def parse_policies(text: str | Sequence[str]) -> tuple[str, ...]:
    """Policy names from ``a,b,c`` (a ``cascade:CHEAP,COSTLY`` keeps its second member) or a list."""
    from triggers.registry import split_names, trigger_parts
    from triggers import TriggerConfigError

    names = [p.strip() for p in (split_names(text) if isinstance(text, str) else text) if p.strip()]
    if not names:
        raise BenchError("no policies given")
    if len(set(names)) != len(names):
        raise BenchError(f"a policy is listed twice: {', '.join(names)}")
    from benchmarks.policies import gate_base

    for name in names:
        try:
            trigger_parts(gate_base(name)[0])
        except TriggerConfigError as exc:
            raise BenchError(f"policy {name!r}: {exc}") from None
        if name == "never@gate":
            raise BenchError("policy 'never@gate': never retrieves, so there is nothing to gate")
    return tuple(names)


def signal_dict(sig: Signal, costs: dict[str, float] | None = None, details: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"score": json_float(float(sig.score)), "fired": bool(sig.fired)}
    if details:
        out["details"] = sig.details
    if costs is not None:
        out["costs"] = costs
    return out


class QuestionRunner:
    """Computes one question's cached record (see the module docstring)."""

    def __init__(self, lm: Any, retriever: Retriever, triggers: dict[str, Trigger], config: LoopConfig,
                 gated: Sequence[str] = (), gate_config: LoopConfig | None = None, gate_sweep: bool = False) -> None:
        """``gated``: the policies (by their ungated names) also run as ``NAME@gate``, with ``gate_config``'s
        relevance gate; ``gate_sweep``: keep a draft for every number of kept passages, not only the gate's."""
        self.lm, self.retriever, self.triggers, self.config = lm, retriever, triggers, config
        self.meter = Meter(lm)
        # for its per-step API only; its drafts keep the alternatives per token that any policy reads
        tops = max([config.top_logprobs, *map(draft_top_logprobs, triggers.values())])
        self.loop = AdaptiveRAG(lm, retriever, Never(), config=replace(config, top_logprobs=tops))
        self.gated, self.gate_config = tuple(gated), gate_config
        self.gate = (GateDrafts(gate_config.relevance_gate, gate_sweep, gate_config.abstain)
                     if gated and gate_config is not None and gate_config.relevance_gate is not None else None)
        if gated and self.gate is None:
            raise BenchError("NAME@gate policies need --relevance-gate")

    # -- cached pieces of one question -------------------------------------------------------------
    def _draft(self, question: str, context: list[Passage], cache: dict):
        key = tuple(p.id for p in context)
        if key not in cache:
            with self.meter.measure() as cost:
                prompt = self.loop.step_prompt(question, context)
                g = self.loop.draft([prompt])[0]
            cache[key] = (g, prompt, cost)
        return cache[key]

    def _retrieve(self, query: str, cache: dict) -> tuple[list[Passage], dict[str, float]]:
        if query not in cache:
            with self.meter.measure(retriever_calls=1) as cost:
                passages = self.retriever.retrieve(query, self.config.k)
            cache[query] = (passages, cost)
        return cache[query]

    def _query(self, question: str, draft) -> str:
        return form_query(question, draft, getattr(self.lm, "detokenize", None), self.config.mask_below)

    def _state(self, question: str, draft, prompt, retrievals: dict) -> LedgerState:
        """The loop's step state for ``draft``; a search a trigger makes on it is shared with the RAG branch."""
        query = self._query(question, draft) if draft is not None else question
        return LedgerState.of(self.loop.step_state(question, "", draft, -1 if draft is None else 0, prompt, query),
                              self.meter, retrievals)

    def _rag(self, question: str, draft, drafts: dict, retrievals: dict) -> dict[str, Any]:
        """What the loop does when the trigger fires on ``draft``: masked query, retrieve, regenerate.
        ``retrieval_costs``: the search alone, which a trigger that searched first has paid already."""
        query = self._query(question, draft)
        passages, r_cost = self._retrieve(query, retrievals)
        final, d_cost = draft, zero()
        if passages:
            final, _, d_cost = self._draft(question, passages, drafts)
        return {"query": query, "passage_ids": [p.id for p in passages], "text": final.text.strip(),
                "costs": add(r_cost, d_cost), "retrieval_costs": r_cost}

    def _score(self, trigger: Trigger, state: LedgerState) -> dict[str, Any]:
        state.used = set()
        before = set(state.paid)
        with self.meter.measure() as measured:
            sig = trigger.score(state)
        paid = state.paid - before
        measured["retriever_calls"] += sum(1 for k in paid if k[0] == "passages")  # the meter sees LM use only
        out = signal_dict(sig, state.charge(paid, measured))
        if any(k[0] == "passages" for k in state.used):
            out["searched"] = True  # a fired step reuses the search: policies charge it once
        return out

    def _pre_branch(self, question: str, trigger: Trigger, drafts: dict, retrievals: dict) -> dict[str, Any] | None:
        pre_state = self._state(question, None, self.loop.templates.build(question), retrievals)
        with self.meter.measure() as cost:
            pre = trigger.check_question(pre_state)
        if pre is None:
            return None
        entry: dict[str, Any] = {"signal": signal_dict(pre, cost)}
        if pre.fired:
            passages, r_cost = self._retrieve(question, retrievals)
            g, prompt, d_cost = self._draft(question, passages, drafts)
            state = self._state(question, g, prompt, retrievals)
            entry["draft"] = {"text": g.text.strip(), "passage_ids": [p.id for p in passages],
                              "costs": add(r_cost, d_cost)}
            entry["step"] = self._score(trigger, state)
            entry["rag"] = self._rag(question, g, drafts, retrievals)
        return entry

    def run(self, ex: QAExample, drafts: dict | None = None, retrievals: dict | None = None,
            live: dict[str, Any] | None = None) -> dict[str, Any]:
        """One question's record; ``drafts``/``retrievals``/``live``: what `run_many` computed for it in a batch."""
        t0 = time.perf_counter()
        q = ex.question.strip()
        drafts = {} if drafts is None else drafts
        retrievals = {} if retrievals is None else retrievals
        record: dict[str, Any] = {"id": ex.id, "question": q, "answers": list(ex.answers)}
        if self.config.max_steps > 1:
            record["live"] = live if live is not None else self._live([q])[0]
        else:
            pre = {name: e for name, t in self.triggers.items() if (e := self._pre_branch(q, t, drafts, retrievals))}
            g, prompt, cost = self._draft(q, [], drafts)
            record["closed_book"] = {"text": g.text.strip(), "tokens": len(g.token_ids), "costs": cost}
            state = self._state(q, g, prompt, retrievals)
            record["signals"] = {name: self._score(t, state) for name, t in self.triggers.items()}
            record["extra_signals"] = {f"token-confidence:{a}": json_float(TokenConfidence(a).score(state).score)
                                       for a in FREE_AGGREGATIONS}
            record["rag"] = self._rag(q, g, drafts, retrievals)
            if self.gate is not None:
                passages = self._retrieve(record["rag"]["query"], retrievals)[0]
                record["gate"] = self.gate.record(q, record["rag"], passages,
                                                  lambda kept: self._draft(q, kept, drafts)[::2])
            if pre:
                record["pre"] = pre
        record["wall_seconds"] = time.perf_counter() - t0
        return record

    def _live(self, questions: list[str]) -> list[dict[str, Any]]:
        """Multi-step answers: run each policy for real (``never`` always, for the correctness labels),
        the questions together (`AdaptiveRAG.answer_many`: the same answers as one by one)."""
        from triggers import Always

        policies: dict[str, Trigger] = {"never": Never(), "always": Always(), **self.triggers}
        runs = [(name, trig, self.config) for name, trig in policies.items()]
        runs += [(f"{name}@gate", policies[name], self.gate_config) for name in self.gated]
        out: list[dict[str, Any]] = [{} for _ in questions]
        for name, trig, config in runs:
            loop = AdaptiveRAG(self.lm, self.retriever, trig, config=config)
            for entry, ans in zip(out, loop.answer_many(questions, batch_size=len(questions))):
                first = ans.steps[0].signal if ans.steps and not ans.pre_retrieval else None
                entry[name] = {"text": ans.text, "retrieved": ans.retrieved, "costs": ans.costs.to_dict(),
                               "first_step": signal_dict(first, details=False) if first else None,
                               "pre_fired": bool(ans.pre_check and ans.pre_check.fired),
                               "steps": [{"fired": s.fired, "score": json_float(s.signal.score) if s.signal else None}
                                         for s in ans.steps],
                               "stop_reason": ans.stop_reason}
                if config is not self.config:
                    entry[name].update(abstained=ans.abstained, nothing_relevant=ans.nothing_relevant)
        return out

    def run_many(self, examples: Sequence[QAExample]) -> list[dict[str, Any]]:
        """`run` for each example, with their LM calls batched and each record equal to `run`'s but
        for costs' seconds and generated-token shares (rag/loop/batch.py). Single-step: the closed-book
        drafts in one call, their searches in one, the RAG drafts in one; they warm the per-question
        caches and `run` takes it from there. Multi-step: each policy's answers through `answer_many`.
        A record's ``wall_seconds`` is the batch's wall time divided evenly."""
        t0 = time.perf_counter()
        qs = [ex.question.strip() for ex in examples]
        if self.config.max_steps > 1:
            records = [self.run(ex, live=live) for ex, live in zip(examples, self._live(qs))]
        else:
            records = [self.run(ex, drafts, retrievals) for ex, (drafts, retrievals) in zip(examples, self._warm(qs))]
        for r in records:
            r["wall_seconds"] = (time.perf_counter() - t0) / len(records)
        return records

    def _warm(self, questions: list[str]) -> list[tuple[dict, dict]]:
        """Per question, the caches `run` reads (drafts, searches), holding the closed-book draft, the
        search with its masked query and the draft with those passages, each computed for all at once."""
        drafts: list[dict] = [{} for _ in questions]
        searches: list[dict] = [{} for _ in questions]
        prompts = [self.loop.step_prompt(q) for q in questions]
        closed, costs = draft_shares(self.loop.stepper, prompts)
        for cache, prompt, g, cost in zip(drafts, prompts, closed, costs):
            cache[()] = (g, prompt, cost.to_dict())
        queries = [self._query(q, g) for q, g in zip(questions, closed)]
        found, costs = search_shares(self.retriever, queries, self.config.k)
        for cache, query, passages, cost in zip(searches, queries, found, costs):
            cache[query] = (passages, cost.to_dict())
        todo = [(cache, q, passages) for cache, q, passages in zip(drafts, questions, found) if passages]
        prompts = [self.loop.step_prompt(q, passages) for _, q, passages in todo]
        for (cache, _, passages), prompt, g, cost in zip(todo, prompts, *draft_shares(self.loop.stepper, prompts)):
            cache[tuple(p.id for p in passages)] = (g, prompt, cost.to_dict())
        if self.gate is not None:  # the drafts with the gate's subsets, in one call too
            todo = [(cache, q, kept) for cache, q, passages in zip(drafts, questions, found) if passages
                    for kept in self.gate.subsets(q, passages)[1].values()]
            prompts = [self.loop.step_prompt(q, kept) for _, q, kept in todo]
            for (cache, _, kept), prompt, g, cost in zip(todo, prompts, *draft_shares(self.loop.stepper, prompts)):
                cache[tuple(p.id for p in kept)] = (g, prompt, cost.to_dict())
        return list(zip(drafts, searches))


# -- the run folder: manifest, append-only results, resume ------------------------------------------
def read_results(out_dir: Path, repair: bool = False, check: bool = False) -> list[dict[str, Any]]:
    """The records in ``results.jsonl``. A run killed mid-line leaves a partial last line: it is
    dropped (and cut off the file when ``repair``), so the resumed run redoes that question once.
    ``check``: each record must have the fields the report reads (`_check_record`)."""
    path = out_dir / RESULTS
    records = []
    for lineno, line in complete_lines(path, repair):
        try:
            rec = json.loads(line)
            records.append(_check_record(rec, f"{path}:{lineno}") if check else rec)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{path}:{lineno}: malformed result line ({exc.msg} at column {exc.colno})") from None
    return records


def read_run_manifest(out_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run folder; a damaged one is a one-line BenchError naming it."""
    path = out_dir / MANIFEST
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: damaged run manifest ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                         "use another --out") from None
    if not isinstance(run, dict) or not isinstance(run.get("config"), dict):
        raise BenchError(f"{path}: damaged run manifest (no 'config' object); use another --out")
    return run


RECORD_FIELDS = ("id", "question", "answers", "wall_seconds")
SINGLE_STEP_FIELDS = ("closed_book", "signals", "extra_signals", "rag")


def _check_record(rec: Any, where: str) -> dict[str, Any]:
    """A result line has what the report reads (a hand-edited or foreign line would crash it later)."""
    if not isinstance(rec, dict):
        raise BenchError(f"{where}: result line is not a JSON object")
    need = RECORD_FIELDS + (() if "live" in rec else SINGLE_STEP_FIELDS)
    missing = [k for k in need if k not in rec]
    if missing:
        raise BenchError(f"{where}: result record lacks field(s) {', '.join(missing)}; remove the line to recompute that question")
    return rec


def prepare_run_dir(out_dir: Path, config: BenchConfig, writing: bool = True) -> list[dict[str, Any]]:
    """Create the run folder or check that it holds the same configuration; return the records so far.
    Only a writer (``writing``, holding `writer_lock`) repairs a partial last line."""
    manifest = out_dir / MANIFEST
    if not writing and not manifest.exists():
        raise BenchError(f"{out_dir}: no benchmark run here")
    out_dir.mkdir(parents=True, exist_ok=True)
    if manifest.exists():
        old = results_key(read_run_manifest(out_dir)["config"])
        if old != config.key():
            diff = sorted(k for k in set(old or {}) | set(config.key()) if (old or {}).get(k) != config.key().get(k))
            raise BenchError(f"{out_dir} holds a run with different settings ({', '.join(diff)}); use another --out")
    else:
        write_json_atomic(manifest, {"config": config.key(), "created": time.strftime("%Y-%m-%d %H:%M:%S")})
    return read_results(out_dir, repair=writing, check=True)


@contextmanager
def writer_lock(out_dir: Path) -> Iterator[None]:
    """One writer per run folder: two resumed runs appending at once would duplicate questions."""
    import fcntl

    with open(out_dir / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(f"another arag bench is writing to {out_dir}; wait for it or use --report-only") from None
        yield
