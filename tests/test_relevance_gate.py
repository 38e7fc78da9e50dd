"""The relevance gate (retrievers/relevance.py) in the loop, the CLI, the config file and the server;
AND-combinations and inverted signals; gated policies in benchmarks. Real MiniLM embeddings, real
BM25, the tiny random model for loop mechanics and the default model for the demo questions."""
from __future__ import annotations

import json

import httpx
import pytest

from conftest import arag_here
from corpora.documents import Document
from rag.apps.server import ServerThread, create_app
from rag.errors import UsageError
from rag.loop import AdaptiveRAG, LoopConfig
from rag.loop.run import ABSTENTION
from rag.pipeline import Pipeline
from triggers.registry import build_trigger
from retrievers import RetrieverError, build_retriever
from retrievers.base import Passage
from retrievers.relevance import DEFAULT_GATE_THRESHOLD, EmbeddingRelevance, RelevanceGate
from triggers import AllOf, AnyOf, Always, Inverted, TriggerConfigError

DOCS = [
    Document(id="d1", title="Paris", text="Paris is the capital and largest city of France."),
    Document(id="d2", title="Lyon", text="Lyon is a city in France on the Rhone."),
    Document(id="d3", title="Photosynthesis", text="Plants turn light, water and carbon dioxide into sugar."),
]


@pytest.fixture(scope="module")
def bm25():
    return build_retriever("bm25", DOCS, progress=False)


def test_embedding_relevance_ranks_the_passage_on_the_question_first():
    ps = [Passage(d.id, d.text, d.title) for d in DOCS]
    scores = EmbeddingRelevance().scores("what is the capital of France", ps)
    assert scores[0] > scores[1] > scores[2]
    assert all(-1.0 <= s <= 1.0 for s in scores)
    gate = RelevanceGate(0.5)
    kept = gate.keep(gate.score("what is the capital of France", ps))
    assert [p.id for p in kept] == ["d1"] and kept[0].metadata["relevance"] == pytest.approx(scores[0])


@pytest.mark.parametrize("bad", [1.5, -2, float("nan"), "high"])
def test_a_gate_threshold_outside_the_cosine_range_is_refused(bad):
    with pytest.raises(RetrieverError, match="relevance gate threshold"):
        RelevanceGate(bad)


def test_nothing_relevant_keeps_the_draft_and_saves_the_regeneration(tiny_lm, bm25):
    plain = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(max_steps=1, step_tokens=6)).answer("capital of France?")
    gated = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(max_steps=1, step_tokens=6, relevance_gate=1.0))
    a = gated.answer("capital of France?")
    step = a.steps[0]
    assert step.fired and step.nothing_relevant and a.nothing_relevant
    assert step.passages == [] and a.sources == [] and not a.retrieved
    assert set(step.gate["relevance"]) == {p.id for p in plain.steps[0].passages}
    assert step.text == step.draft  # the draft stood
    assert (a.costs.lm_calls, plain.costs.lm_calls) == (1, 2)  # one LM call saved
    assert a.costs.retriever_calls == 1
    d = a.to_dict()
    assert d["nothing_relevant"] and not d["abstained"] and d["steps"][0]["gate"]["nothing_relevant"]


def test_a_gate_below_every_score_changes_nothing(tiny_lm, bm25):
    cfg = dict(max_steps=2, step_tokens=6)
    plain = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(**cfg)).answer("capital of France?")
    open_gate = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(**cfg, relevance_gate=-1.0)).answer("capital of France?")
    assert open_gate.text == plain.text
    assert [p.id for p in open_gate.sources] == [p.id for p in plain.sources]
    assert open_gate.steps[0].gate["kept"] == [p.id for p in plain.steps[0].passages]


def test_abstain_answers_that_nothing_was_found_and_ends(tiny_lm, bm25):
    loop = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(max_steps=3, step_tokens=6, relevance_gate=1.0, abstain=True))
    streamed: list[str] = []
    a = loop.answer("capital of France?", on_text=streamed.append)
    assert a.text == ABSTENTION and a.abstained and a.stop_reason == "abstained" and len(a.steps) == 1
    assert "".join(streamed) == ABSTENTION  # the unsupported draft never reaches the stream
    batched = loop.answer_many(["capital of France?", "where is Lyon?"], batch_size=2)
    keys = ("draft", "fired", "passage_ids", "text", "gate")  # a padded batch moves the log-probs' last bits
    assert batched[0].text == ABSTENTION
    assert [{k: s[k] for k in keys} for s in batched[0].to_dict()["steps"]] == [{k: s[k] for k in keys} for s in a.to_dict()["steps"]]
    with pytest.raises(UsageError, match="abstain needs the relevance gate"):
        LoopConfig(abstain=True)


def test_and_combination_and_inverted_signals_build_from_names():
    t = build_trigger("token-confidence&-retrieval-top1")
    assert isinstance(t, AllOf) and t.name == "token-confidence&-retrieval-top1"
    assert isinstance(t.members[1], Inverted) and t.members[1].member.name == "retrieval-top1"
    assert isinstance(build_trigger("inverse:msp"), Inverted)
    assert isinstance(build_trigger("msp+-perplexity"), AnyOf)
    # -a reads a's settings (its own config table)
    inv = build_trigger("-retrieval-top1", per_trigger={"retrieval-top1": {"threshold": 7.5}})
    assert inv.member.threshold == 7.5
    for bad, msg in (("msp+perplexity&p-true", "mixes"), ("--msp", "inverted trigger"), ("-nope", "unknown trigger"),
                     ("msp&", "empty trigger")):
        with pytest.raises(TriggerConfigError, match=msg):
            build_trigger(bad)


def test_inverted_and_all_of_decide_on_a_real_search(tiny_lm, bm25):
    """retrieval-top1 fires when BM25's best score is low; its inverse exactly when it does not, the
    AND only when both members fire, and the search is made once for all of them."""
    loop = AdaptiveRAG(tiny_lm, bm25, Always(), config=LoopConfig(max_steps=1, step_tokens=4))
    for question in ("capital of France?", "quantum chromodynamics"):
        g = loop.draft([loop.step_prompt(question)])[0]
        state = loop.step_state(question, "", g, 0, loop.step_prompt(question), question)
        top1 = build_trigger("retrieval-top1").score(state)
        inv = build_trigger("-retrieval-top1").score(state)
        both = build_trigger("always&-retrieval-top1").score(state)
        assert inv.fired == (not top1.fired) and inv.score == -top1.score
        assert both.fired == inv.fired
        assert state.retriever_calls == 1


@pytest.mark.slow
def test_config_file_and_cli_flags(tmp_path, tiny_model_dir):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in DOCS))
    cfg = tmp_path / "arag.toml"
    cfg.write_text("[loop]\nrelevance_gate = 1.0\nabstain = true\n")
    base = ["ask", "capital of France?", "--model", str(tiny_model_dir), "--corpus", str(corpus), "--max-steps", "1"]
    r = arag_here(*base, "--trigger", "always", "--config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["answer"] == ABSTENTION and out["abstained"] and out["sources"] == []
    r = arag_here(*base, "--trigger", "always", "--relevance-gate", "-1", "--config", str(cfg), "--no-abstain", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sources"]  # the flag wins over the file
    bad = tmp_path / "bad.toml"
    bad.write_text("[loop]\nabstain = 1\n")
    for args, msg in ((["--trigger", "always", "--config", str(bad)], "[loop] abstain must be a boolean"),
                      (["--trigger", "never", "--relevance-gate"], "nothing to gate"),
                      (["--trigger", "always", "--relevance-gate", "3"], "relevance gate threshold"),
                      (["--trigger=-nope"], "unknown trigger 'nope'")):
        r = arag_here(*base, *args)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_server_request_fields(tiny_lm, bm25):
    pipe = Pipeline(lm=tiny_lm, retriever=bm25, trigger=Always(), config=LoopConfig(max_steps=1, step_tokens=6))
    with ServerThread(create_app(pipe)) as srv:
        def post(arag: dict) -> httpx.Response:
            body = {"model": "default", "messages": [{"role": "user", "content": "capital of France?"}], "arag": arag}
            return httpx.post(srv.base_url + "/chat/completions", json=body, timeout=300)

        r = post({"relevance_gate": 1.0})
        assert r.status_code == 200, r.text
        trace = r.json()["arag"]
        assert trace["nothing_relevant"] and trace["sources"] == [] and trace["steps"][0]["gate"]["nothing_relevant"]
        r = post({"relevance_gate": 1.0, "abstain": True})
        assert r.json()["choices"][0]["message"]["content"] == ABSTENTION and r.json()["arag"]["abstained"]
        r = post({"abstain": True})
        assert r.status_code == 400 and r.json()["error"]["param"] == "arag.abstain"
        r = post({"relevance_gate": 2})
        assert r.status_code == 400 and "relevance_gate" in r.json()["error"]["param"]
        r = post({"trigger": "always&-retrieval-top1"})
        assert r.status_code == 200 and r.json()["arag"]["trigger"] == "always&-retrieval-top1"


@pytest.mark.slow
def test_demo_questions_with_the_gate(default_lm, demo_docs):
    """The gate on the shipped demo corpus: a question the corpus does not cover gets no sources; one
    it covers keeps its passage."""
    bm25 = build_retriever("bm25", demo_docs, progress=False)
    loop = AdaptiveRAG(default_lm, bm25, Always(), config=LoopConfig(max_steps=1, relevance_gate=DEFAULT_GATE_THRESHOLD))
    moby = loop.answer("who wrote the novel moby dick")
    assert moby.sources == [] and moby.nothing_relevant and moby.costs.lm_calls == 1
    opec = loop.answer("how many countries are a part of opec")
    assert [p.title for p in opec.sources] == ["OPEC"]


def _record(i: int, closed: str, rag: str, score: float, relevance=(0.9, 0.5, 0.1), drafts=None, abstain=False) -> dict:
    """A single-step benchmark record as the runner writes it (answers: "yes")."""
    cost = {"lm_calls": 1, "retriever_calls": 0, "prompt_tokens": 10, "generated_tokens": 2, "seconds": 0.1}
    search = {"lm_calls": 0, "retriever_calls": 1, "prompt_tokens": 0, "generated_tokens": 0, "seconds": 0.0}
    gate = {"threshold": 0.3, "drafts": drafts if drafts is not None else
            {"1": {"passage_ids": ["a"], "text": "one", "costs": cost}, "2": {"passage_ids": ["a", "b"], "text": "two", "costs": cost}}}
    if abstain:
        gate["abstention"] = ABSTENTION
    return {"id": f"q{i}", "question": f"question {i}", "answers": ["yes"], "wall_seconds": 0.1, "extra_signals": {},
            "closed_book": {"text": closed, "costs": cost},
            "rag": {"query": "q", "passage_ids": ["a", "b", "c"], "text": rag, "costs": {**cost, "retriever_calls": 1},
                    "retrieval_costs": search, "relevance": list(relevance)},
            "signals": {"msp": {"score": score, "fired": score > 0.5, "costs": {}}}, "gate": gate}


def test_gated_branch_looks_up_the_draft_with_the_passages_the_gate_keeps():
    from benchmarks.policies import gated_branch, outcome

    r = _record(0, "no", "yes", 1.0)
    assert gated_branch(r)["text"] == "two"  # 0.9 and 0.5 pass 0.3: the draft with the two most relevant
    r["gate"]["threshold"] = 0.6
    assert gated_branch(r)["text"] == "one" and gated_branch(r)["passage_ids"] == ["a"]
    assert gated_branch(r, 0.05)["text"] == "yes"  # everything kept: the ungated RAG answer
    closed = gated_branch(r, 0.95)
    assert closed["text"] == "no" and closed["passage_ids"] == [] and closed["costs"]["lm_calls"] == 0
    assert outcome(r, "always@gate").text == "one" and outcome(r, "always").text == "yes"
    assert not outcome(_record(1, "no", "yes", 1.0, relevance=(0.1, 0.1, 0.1)), "msp@gate").retrieved
    abstaining = _record(2, "no", "yes", 1.0, relevance=(0.1, 0.1, 0.1), abstain=True)
    assert outcome(abstaining, "always@gate").abstained and outcome(abstaining, "always@gate").text == ABSTENTION
    with pytest.raises(KeyError, match="relevance-gate-sweep"):
        gated_branch(_record(3, "no", "yes", 1.0, drafts={}), 0.6)


def test_too_few_events_report_no_gain(tmp_path):
    from benchmarks.report import summarize

    # retrieval helps on 3 questions only (closed "no", rag "yes"): no gain, and the report says why
    few = [_record(i, "no", "yes" if i < 3 else "no", float(i)) for i in range(20)]
    row = {r["policy"]: r for r in summarize(few, ["never", "always", "msp"], resamples=50)["policies"]}["msp"]
    assert row["gain"] is None and row["gain_ci"] is None and row["gain_note"] == "too few events (3)"
    many = [_record(i, "no", "yes" if i < 12 else "no", float(i)) for i in range(20)]
    row = {r["policy"]: r for r in summarize(many, ["never", "always", "msp"], resamples=50)["policies"]}["msp"]
    assert row["gain"] is not None and "gain_note" not in row


def test_calibrating_an_inverted_signal_writes_its_members_threshold():
    from benchmarks.calibration import threshold_setting

    # retrieval-top1: score = −top1, fires when top1 < θ; -retrieval-top1 fires when −score > cut, i.e. top1 > cut
    details = {"inverted": {"score": -3.0, "fired": True, "details": {}}}
    assert threshold_setting("-retrieval-top1", 4.0, details) == {"threshold": 4.0}
    assert threshold_setting("retrieval-top1", -4.0, {}) == {"threshold": 4.0}


def test_runner_records_gated_drafts_single_and_multi_step(tiny_lm, bm25):
    from benchmarks.datasets import QAExample
    from benchmarks.policies import gated_branch, outcome
    from benchmarks.runner import QuestionRunner

    ex = [QAExample("q0", "capital of France?", ("Paris",)), QAExample("q1", "where is Lyon?", ("France",))]
    one = LoopConfig(max_steps=1, step_tokens=4)
    sweep = QuestionRunner(tiny_lm, bm25, {"msp": build_trigger("msp")}, one, ["always", "msp"],
                           LoopConfig(max_steps=1, step_tokens=4, relevance_gate=0.3), gate_sweep=True)
    records = sweep.run_many(ex)
    for r, alone in zip(records, (sweep.run(e) for e in ex)):
        assert set(r["gate"]["drafts"]) == {"1", "2"} and len(r["rag"]["relevance"]) == 3
        def texts(rec: dict) -> dict:  # the batched costs are shares of one call; the texts are the same
            return {n: (d["passage_ids"], d["text"]) for n, d in rec["gate"]["drafts"].items()}

        assert texts(r) == texts(alone)
        kept = gated_branch(r, 0.3)["passage_ids"]
        assert kept == [p for p, x in zip(r["rag"]["passage_ids"], r["rag"]["relevance"]) if x >= 0.3]
        assert outcome(r, "msp@gate").fired == outcome(r, "msp").fired
    multi = QuestionRunner(tiny_lm, bm25, {}, LoopConfig(max_steps=2, step_tokens=4), ["always"],
                           LoopConfig(max_steps=2, step_tokens=4, relevance_gate=1.0))
    live = multi.run(ex[0])["live"]
    assert live["always"]["retrieved"] and not live["always@gate"]["retrieved"] and live["always@gate"]["nothing_relevant"]


def test_report_settings_are_not_run_settings():
    """A sweep's threshold and a single-step run's abstention are chosen when the report is made."""
    from benchmarks.bench import with_report_gate
    from benchmarks.policies import outcome
    from benchmarks.runner import BenchConfig

    sweep = BenchConfig("nq_open_oracle", ("always", "always@gate"), relevance_gate=0.3, gate_sweep=True, abstain=True)
    assert "relevance_gate" not in sweep.key() and "abstain" not in sweep.key()
    assert BenchConfig("x", ("always@gate",), relevance_gate=0.3, gate_sweep=True).key() == \
        BenchConfig("x", ("always@gate",), relevance_gate=0.7, gate_sweep=True).key()
    live = BenchConfig("x", ("always@gate",), max_steps=2, relevance_gate=0.3, abstain=True)
    assert live.key()["abstain"] is True and live.key()["relevance_gate"] == 0.3
    r = with_report_gate(_record(0, "no", "yes", 1.0, relevance=(0.2, 0.2, 0.2)), sweep)
    assert outcome(r, "always@gate").abstained and r["gate"]["threshold"] == 0.3
    plain = BenchConfig("x", ("always@gate",), relevance_gate=0.3)
    assert not outcome(with_report_gate(r, plain), "always@gate").abstained


def test_a_gated_question_check_in_a_single_step_bench_is_refused_before_any_model_loads(tmp_path, data_dir):
    from unittest import mock

    with mock.patch("rag.pipeline.load_language_model", side_effect=AssertionError("a model was loaded")):
        r = arag_here("bench", "--dataset", "flashrag_toy", "--limit", "2", "--policies", "never,quco@gate",
                      "--out", str(tmp_path / "run"), "--data-dir", str(data_dir))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "quco@gate" in r.stderr and "--max-steps 2" in r.stderr
