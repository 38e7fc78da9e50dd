"""The signals of issue 12 part 2: draft aggregations, sample consistency (shared samples), P(True),
question features, and retriever evidence (one search, reused by the loop), on real components."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rag.loop import AdaptiveRAG, LoopConfig
from rag.models.lm import Generation
from triggers.registry import build_trigger
from triggers import AnyOf
from triggers.base import StepState
from triggers.consistency import (SampleConsistency, degree_uncertainty, eigval_laplacian, lexical_dissimilarity,
                                  num_semantic_sets, rouge_l)
from triggers.question_features import question_word
from triggers.retrieval_evidence import RetrievalEvidence, support

QUESTIONS = ["who got the first nobel prize in physics", "how many countries are a part of opec"]


# -- pure functions against hand-computed cases ------------------------------------------------------
def test_spectra_of_small_similarity_graphs_by_hand():
    # two cliques {0, 1}, {2}: L has eigenvalues 0, 0, 2 → EigV = 2; Deg = 1 - 5/9
    cliques = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1.0]])
    assert eigval_laplacian(cliques) == pytest.approx(2.0)
    assert degree_uncertainty(cliques) == pytest.approx(4 / 9)
    assert num_semantic_sets(cliques) == 2
    # path 0-1-2 (a non-transitive judge): D^-1/2 W D^-1/2 has eigenvalues 1, 1/2, -1/6, so L has
    # 0, 1/2, 7/6 and EigV = 1 + 1/2 + 0; Deg = 1 - 7/9; one connected component
    path = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1.0]])
    assert eigval_laplacian(path) == pytest.approx(1.5)
    assert degree_uncertainty(path) == pytest.approx(2 / 9)
    assert num_semantic_sets(path) == 1
    # all agree / none agree
    assert eigval_laplacian(np.ones((4, 4))) == pytest.approx(1.0) and degree_uncertainty(np.ones((4, 4))) == 0
    assert eigval_laplacian(np.eye(4)) == pytest.approx(4.0) and degree_uncertainty(np.eye(4)) == pytest.approx(0.75)


def test_rouge_l_and_lexical_dissimilarity_by_hand():
    # LCS("a b c d", "a c d e f") = "a c d": P = 3/5, R = 3/4, F = 2/3
    assert rouge_l("a b c d".split(), "a c d e f".split()) == pytest.approx(2 / 3)
    assert rouge_l([], ["a"]) == 0.0
    assert lexical_dissimilarity(["The Paris.", "paris"]) == 0.0  # SQuAD-normalised: identical
    assert lexical_dissimilarity(["Paris", "Lyon", "Paris"]) == pytest.approx(1 - 1 / 3)


def test_question_word_and_support():
    assert [question_word(q) for q in ("Who wrote it?", "how many moons", "In which year?", "name it")] == \
        ["who", "how many", "which", "other"]
    q = "how many countries are a part of opec"
    assert support(q, "OPEC: 14 member countries.", ["OPEC has 14 member countries today"]) == 1.0
    # "are"/"countries" are the question's own words and dropped; "there" is not in the passage
    assert support(q, "There are 14 member countries.", ["OPEC has 14 member countries today"]) == pytest.approx(2 / 3)
    assert support(q, "14 members", ["OPEC has 14 nations"]) == 0.5  # one of two answer tokens found
    assert support(q, "Zebras.", ["OPEC has 14 nations"]) == 0.0


# -- on the real default model ----------------------------------------------------------------------
def _step(lm, question: str, **extra) -> StepState:
    """The first step's state exactly as the loop builds it (sentence step, the loop's options)."""
    loop = AdaptiveRAG(lm, None, build_trigger("never"))
    prompt = loop.step_prompt(question)
    state = loop.step_state(question, "", loop.draft([prompt])[0], 0, prompt)
    for name, value in extra.items():
        setattr(state, name, value)
    return state


@pytest.mark.slow
def test_draft_signals_are_lm_polygraph_aggregations(default_lm):
    for q in QUESTIONS:
        state = _step(default_lm, q)
        lps, ents = state.draft.logprobs, state.draft.entropies
        before = default_lm.usage.snapshot()
        msp, ppl, ment = (build_trigger(n).score(state) for n in ("msp", "perplexity", "mean-entropy"))
        assert default_lm.usage.since(before).calls == 0  # free: read from the draft
        assert msp.score == pytest.approx(-sum(lps)) and ppl.score == pytest.approx(-sum(lps) / len(lps))
        assert ment.score == pytest.approx(sum(ents) / len(ents))
        assert msp.score >= ppl.score > 0  # a sum of positive NLLs is at least their mean
        assert msp.fired == (msp.score > 5.0) and ment.fired == (ment.score > 2.0)


@pytest.mark.slow
def test_sample_signals_reuse_semantic_entropys_samples_and_verdicts(default_lm):
    state = _step(default_lm, QUESTIONS[0])
    names = ("semantic-entropy", "lexical-similarity", "num-sem-sets", "eigval", "degree")
    combined = AnyOf([build_trigger(n, samples=6, judge="lexical") for n in names], name="+".join(names))
    before = default_lm.usage.snapshot()
    sig = combined.score(state)
    assert default_lm.usage.since(before).calls == 1 and state.sample_calls == 1  # one batched draw for all five
    d = {n: sig.details["members"][n]["details"] for n in names}
    m = 6 - d["eigval"]["empty_samples"]
    assert all(x["samples"] == 6 and x["sample_calls"] == 1 for x in d.values())
    assert 1 <= d["num-sem-sets"]["num_sem_sets"] <= m
    assert 1 - 1e-9 <= d["eigval"]["eigval"] <= m + 1e-9
    assert 0 <= d["degree"]["degree"] <= 1 - 1 / m + 1e-9
    assert 0 <= d["lexical-similarity"]["lexical_similarity"] <= 1
    # one verdict cache per step: no pair is judged twice across semantic entropy and the matrix
    assert d["degree"]["judge_calls"] <= m * (m - 1) // 2
    # the discrete clustering and the matrix read the same verdicts: with a transitive lexical outcome
    # the number of sets equals the number of clusters
    clusters = len(d["semantic-entropy"]["clusters"])
    assert d["num-sem-sets"]["num_sem_sets"] <= clusters


def test_graded_similarity_matrix_from_the_embedding_judge():
    """W keeps the judge's decisions and fills the rest with its cosine: cities are closer than fruit."""
    texts = ["Paris", "Paris, France", "Lyon", "A banana"]
    trig = SampleConsistency(measure="eigval", judge="embedding")
    state = StepState(question="What is the capital of France?")
    binary, graded = trig.similarity_matrix(state, texts, graded=False), trig.similarity_matrix(state, texts, graded=True)
    for w in (binary, graded):
        assert np.allclose(w, w.T) and np.allclose(np.diag(w), 1) and ((0 <= w) & (w <= 1)).all()
    assert (graded >= binary).all() and graded[0, 2] > graded[0, 3] > 0
    assert set(np.unique(binary)) <= {0.0, 1.0}
    assert eigval_laplacian(graded) < eigval_laplacian(binary)  # partial agreement: fewer "meanings"


@pytest.mark.slow
def test_p_true_is_one_forward_pass(default_lm):
    lps = default_lm.next_token_logprobs("Is Paris the capital of France? Answer True or False.", "The answer is:",
                                         (" True", " False"))
    assert all(math.isfinite(v) and v < 0 for v in lps.values())
    state = _step(default_lm, QUESTIONS[0])
    before = default_lm.usage.snapshot()
    sig = build_trigger("p-true").score(state)
    used = default_lm.usage.since(before)
    assert used.calls == 1 and used.generated_tokens == 0
    p = sig.details["p_true"]
    assert 0 < p < 1 and sig.score == pytest.approx(1 - p) and sig.fired == (p < 0.5)


@pytest.mark.slow
def test_p_true_over_the_openai_compatible_backend_matches_in_process(default_lm, bm25):
    """Through a real `arag serve` on 127.0.0.1: the top-20 log-probs of one generated token give the
    in-process log-probs for every candidate among them (-inf for one outside: a lower bound)."""
    from rag.models.openai_backend import OpenAICompatibleModel
    from rag.pipeline import Pipeline
    from rag.apps.server import ServerThread, create_app
    from triggers import TokenConfidence

    args = ("Is Paris the capital of France? Answer True or False.", "The answer is:", (" True", " False"))
    local = default_lm.next_token_logprobs(*args)
    with ServerThread(create_app(Pipeline(lm=default_lm, retriever=bm25, trigger=TokenConfidence(), config=LoopConfig()))) as srv:
        remote = OpenAICompatibleModel.from_spec(f"openai:{srv.base_url}/default")
        before = remote.usage.snapshot()
        http = remote.next_token_logprobs(*args)
        assert remote.usage.since(before).calls == 1
    assert any(math.isfinite(v) for v in http.values())
    for c, v in http.items():
        assert v == -math.inf or v == pytest.approx(local[c], abs=1e-4), c


@pytest.mark.slow
def test_question_features(default_lm):
    state = _step(default_lm, QUESTIONS[1])
    length = build_trigger("question-length").score(state)
    assert length.score == 8 and length.details["question_word"] == "how many" and not length.fired
    freq = build_trigger("entity-frequency", lm=default_lm)
    quco = build_trigger("quco", lm=default_lm)
    assert freq.score(state).score == quco.check_question(state).score  # QuCo's question check, as a step signal


# -- retriever evidence: one search, reused ---------------------------------------------------------
@pytest.fixture(scope="module")
def bm25(demo_docs):
    from retrievers import build_retriever

    return build_retriever("bm25", demo_docs, progress=False)


def test_retrieval_signals_search_once_on_a_real_bm25_index(bm25):
    q = QUESTIONS[1]
    top = bm25.retrieve(q, 3)
    phrase = " ".join(top[0].text.split()[5:9])
    state = StepState(question=q, draft=Generation(text=phrase), retriever=bm25, query=q, k=3)
    combined = AnyOf([RetrievalEvidence(m) for m in ("top1", "gap", "support")])
    sig = combined.score(state)
    assert state.retriever_calls == 1  # three signals, one search
    d = {n: sig.details["members"][n]["details"] for n in ("retrieval-top1", "retrieval-gap", "retrieval-support")}
    assert d["retrieval-top1"]["top1"] == pytest.approx(top[0].score)
    assert d["retrieval-gap"]["gap"] == pytest.approx(top[0].score - top[1].score)
    assert d["retrieval-support"]["support"] == 1.0 and not sig.details["members"]["retrieval-support"]["fired"]
    assert state.searched() is not None and [p.id for p in state.searched()] == [p.id for p in top]
    unsupported = StepState(question=q, draft=Generation(text="Zebras and xylophones."), retriever=bm25, query=q, k=3)
    assert RetrievalEvidence("support").score(unsupported).fired


def test_calibrated_thresholds_reproduce_the_score_cut(bm25):
    """`arag calibrate`'s conversion: the trigger configured with threshold_setting(cut) fires exactly
    when its score exceeds the cut."""
    from benchmarks.calibration import threshold_setting

    q = QUESTIONS[1]
    draft = Generation(text="Zebras.", logprobs=[-0.5, -2.0], entropies=[1.0, 3.0],
                       top_logprobs=[{"Zebras": -0.5, "Lions": -1.2}, {".": -0.1, "!": -2.5}])
    state = StepState(question=q, draft=draft, retriever=bm25, query=q, k=3)
    for name in ("msp", "perplexity", "mean-entropy", "margin", "question-length", "retrieval-top1", "retrieval-gap",
                 "retrieval-support"):
        sig = build_trigger(name).score(state)
        for cut, fires in ((sig.score - 1e-6, True), (sig.score, False)):
            setting = threshold_setting(name, cut, sig.details)
            assert build_trigger(name, **setting).score(state).fired == fires, (name, cut)


@pytest.mark.slow
def test_the_loop_reuses_the_triggers_search_and_counts_it(default_lm, bm25):
    config = LoopConfig(max_steps=1)
    fires = AdaptiveRAG(default_lm, bm25, RetrievalEvidence("top1", threshold=1e9), config=config).answer(QUESTIONS[1])
    step = fires.steps[0]
    assert step.fired and fires.costs.retriever_calls == 1  # searched once, to decide and to answer
    assert [p.id for p in step.passages] == step.signal.details["passage_ids"]
    quiet = AdaptiveRAG(default_lm, bm25, RetrievalEvidence("top1", threshold=-1e9), config=config).answer(QUESTIONS[1])
    assert not quiet.steps[0].fired and quiet.costs.retriever_calls == 1  # the decision's search is a cost


@pytest.mark.slow
def test_derived_retrieval_policy_costs_equal_the_loops(default_lm, bm25):
    from benchmarks.datasets import QAExample
    from benchmarks.policies import outcome
    from benchmarks.runner import QuestionRunner

    config = LoopConfig(max_steps=1)
    triggers = {"retrieval-top1": RetrievalEvidence("top1", threshold=1e9), "p-true": build_trigger("p-true")}
    rec = QuestionRunner(default_lm, bm25, triggers, config).run(QAExample("0", QUESTIONS[1], ("12",)))
    assert rec["signals"]["retrieval-top1"]["costs"]["retriever_calls"] == 1
    assert rec["signals"]["p-true"]["costs"]["lm_calls"] == 1
    derived = outcome(rec, "retrieval-top1")
    real = AdaptiveRAG(default_lm, bm25, triggers["retrieval-top1"], config=config).answer(QUESTIONS[1])
    assert derived.text == real.text and derived.retrieved == real.retrieved
    for key in ("lm_calls", "retriever_calls", "prompt_tokens", "generated_tokens"):
        assert derived.costs[key] == getattr(real.costs, key), key


# -- arag bench records the new columns -------------------------------------------------------------
@pytest.mark.slow
def test_bench_records_the_new_signals(tmp_path, data_dir, default_lm):
    from conftest import arag_here

    policies = "never,msp,mean-entropy,eigval,p-true,question-length,retrieval-top1,retrieval-support"
    out = tmp_path / "run"
    done = arag_here("bench", "--dataset", "nq_open_oracle", "--limit", "2", "--policies", policies, "--samples", "3",
                     "--judge", "lexical", "--out", str(out), "--data-dir", str(data_dir), default_lm=default_lm)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2
    for r in records:
        sig = r["signals"]
        assert sig["msp"]["costs"]["lm_calls"] == 0 and sig["question-length"]["costs"]["lm_calls"] == 0
        assert sig["eigval"]["costs"]["lm_calls"] == 1 and sig["p-true"]["costs"]["lm_calls"] == 1
        assert sig["retrieval-top1"]["costs"]["retriever_calls"] == 1 and sig["retrieval-top1"]["searched"]
        assert sig["retrieval-support"]["costs"]["retriever_calls"] == 1
        assert {"token-confidence:sequence_prob", "token-confidence:mean_entropy"} <= r["extra_signals"].keys()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    columns = {s["signal"] for s in summary["signals"]}
    assert set(policies.split(",")[1:]) <= columns
    assert set(policies.split(",")[1:]) <= set(summary["sweeps"])
    rows = {row["policy"]: row for row in summary["policies"]}
    assert rows["retrieval-top1"]["retriever_calls_per_q"] <= 1  # the decision's search is the RAG branch's search
