"""Semantic entropy (Kuhn et al., ICLR 2023; Farquhar et al., Nature 2024): sample N versions of the
step, cluster them by meaning, and measure the entropy over meanings rather than over strings.

The estimators follow jlko/semantic_uncertainty `semantic_entropy.py`, names included:
- ``cluster_assignment_entropy``: discrete semantic entropy from cluster frequencies.
- ``logsumexp_by_id`` + ``predictive_entropy_rao``: probability-weighted semantic entropy. Each
  sample's sequence likelihood is its mean token log-prob (length-normalised), normalised over
  the N samples; a cluster's probability is the log-sum-exp of its members'; Rao's estimator
  ``-Σ_c p_c log p_c`` over clusters.
- ``predictive_entropy``: the naive Monte-Carlo entropy over strings, ``-1/N Σ_i log p(s_i)``,
  kept as a baseline signal.

Costs: one batched `generate` call for the N samples (shared with any other trigger of the step
through `StepState.samples`), plus at most N·clusters judge calls.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from corpora.settings import Setting
from triggers.base import Signal, StepState, TriggerConfigError, check_threshold
from triggers.clustering import Clustering, check_variant, get_semantic_ids, shared_judgments
from triggers.protocols import TokenStatistics
from triggers.equivalence import DEFAULT_JUDGE, make_judge
from triggers.judges.base import EquivalenceJudge
from triggers.spec import TriggerSpec, threshold_setting

ESTIMATORS = ("weighted", "discrete")
DEFAULT_THRESHOLDS = {"weighted": 1.0, "discrete": 1.0}  # nats; not calibrated: docs/triggers/semantic-entropy.md
MIN_SAMPLE_TOKENS = 16


# -- estimators (pure functions) ------------------------------------------------------------------
def logsumexp(xs: Sequence[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def sequence_log_likelihood(token_logprobs: Sequence[float]) -> float:
    """Length-normalised sequence log-likelihood: the mean token log-prob (jlko's ``log_liks_agg``)."""
    if not token_logprobs:
        raise ValueError("a sequence with no tokens has no likelihood")
    return sum(token_logprobs) / len(token_logprobs)


def predictive_entropy(log_probs: Sequence[float]) -> float:
    """Naive MC entropy estimate ``E[-log p(s)] ≈ -1/N Σ_i log p(s_i)`` over sampled strings."""
    return -sum(log_probs) / len(log_probs)


def predictive_entropy_rao(log_probs: Sequence[float]) -> float:
    """Rao's estimator ``-Σ p log p`` for log-probabilities that already sum to one (per cluster)."""
    return -sum(math.exp(lp) * lp for lp in log_probs)


def cluster_assignment_entropy(semantic_ids: Sequence[int]) -> float:
    """Discrete semantic entropy: the entropy of the empirical distribution of cluster ids."""
    n = len(semantic_ids)
    return 0.0 - sum((c / n) * math.log(c / n) for c in Counter(semantic_ids).values())


def logsumexp_by_id(semantic_ids: Sequence[int], log_likelihoods: Sequence[float]) -> list[float]:
    """Log-probability of each cluster (ids 0..K-1): members' likelihoods normalised over all
    samples, then summed in log space (jlko's ``agg='sum_normalized'``)."""
    if sorted(set(semantic_ids)) != list(range(len(set(semantic_ids)))):
        raise ValueError(f"semantic ids must be 0..K-1, got {sorted(set(semantic_ids))}")
    total = logsumexp(log_likelihoods)
    return [
        logsumexp([ll - total for sid, ll in zip(semantic_ids, log_likelihoods) if sid == uid])
        for uid in range(len(set(semantic_ids)))
    ]


# -- the trigger ------------------------------------------------------------------------------------
@dataclass
class SampleSettings:
    """How a step's samples are drawn and judged; triggers with equal settings share the samples
    (`StepState.samples`) and the judge's verdicts (`clustering.shared_judgments`).

    ``sample_tokens`` caps each sample's length; None: twice the draft's tokens (at least
    ``MIN_SAMPLE_TOKENS``, at most the step budget), because a sample as long as the draft
    already says what it means, and the batch decodes until its longest sample stops.
    """

    samples: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    judge: EquivalenceJudge | str = DEFAULT_JUDGE
    variant: str = "strict"
    sample_tokens: int | None = None

    def check_sampling(self) -> None:
        """Validate the settings and build the judge from its spec."""
        if not isinstance(self.samples, int) or isinstance(self.samples, bool) or self.samples < 2:
            raise TriggerConfigError(f"samples must be an integer >= 2 (entropy over one sample is 0), got {self.samples!r}")
        if not check_threshold(self.temperature, "temperature") > 0:
            raise TriggerConfigError(f"sampling temperature must be > 0, got {self.temperature}")
        if not 0.0 < check_threshold(self.top_p, "top_p") <= 1.0:
            raise TriggerConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.sample_tokens is not None and self.sample_tokens < 1:
            raise TriggerConfigError(f"sample_tokens must be >= 1, got {self.sample_tokens}")
        check_variant(self.variant)
        self.judge = make_judge(self.judge)

    def sample_budget(self, state: StepState) -> int:
        return sample_budget(state, self.sample_tokens)

    def draw(self, state: StepState) -> tuple[list[TokenStatistics], list[tuple[str, float]]]:
        """The step's shared samples and the non-empty ones (`draw_kept`); an ``lm`` judge gets the step's model."""
        bind_sampler(self.judge, state.sampler)
        return draw_kept(state, self.samples, self.temperature, self.top_p, self.sample_tokens)


@dataclass
class SemanticEntropy(SampleSettings):
    """Fire when the semantic entropy of N samples of the step exceeds ``threshold`` (nats).

    ``estimator`` picks the score: ``weighted`` (probability-weighted, Farquhar et al.'s
    "semantic entropy") or ``discrete`` (cluster frequencies); both are in the details.
    Sampling settings: `SampleSettings`.
    """

    threshold: float | None = None
    estimator: str = "weighted"
    name: str = "semantic-entropy"

    def __post_init__(self) -> None:
        self.check_sampling()
        if self.estimator not in ESTIMATORS:
            raise TriggerConfigError(f"unknown estimator {self.estimator!r}; choose from {', '.join(ESTIMATORS)}")
        self.threshold = check_threshold(DEFAULT_THRESHOLDS[self.estimator] if self.threshold is None else self.threshold)

    def check_question(self, state: StepState) -> Signal | None:
        return None  # samples of a step are drawn once a step is being decided, not on the question alone

    def score(self, state: StepState) -> Signal:
        drawn, kept = self.draw(state)
        details: dict[str, Any] = {
            "samples": len(drawn), "empty_samples": len(drawn) - len(kept), "temperature": self.temperature,
            "top_p": self.top_p, "judge": self.judge.name, "variant": self.variant, "estimator": self.estimator,
            "threshold": self.threshold, "sample_calls": state.sample_calls,
        }
        if not kept:  # every sample ended the step at once: the model agrees there is nothing to add
            nothing = {"semantic_entropy": 0.0, "discrete_semantic_entropy": 0.0, "naive_entropy": 0.0}
            return Signal(score=0.0, fired=False, details={**details, **nothing, "clusters": [], "judge_calls": 0})
        texts, log_liks = [t for t, _ in kept], [ll for _, ll in kept]
        judgments = shared_judgments(state, self.judge, self.variant)
        clustering = get_semantic_ids(texts, judgments)
        entropies = semantic_entropies(clustering.semantic_ids, log_liks)
        cluster_log_probs = entropies.pop("cluster_log_probs")
        score = entropies["semantic_entropy" if self.estimator == "weighted" else "discrete_semantic_entropy"]
        details.update(entropies)
        details.update({
            "clusters": _describe(clustering, texts, cluster_log_probs),
            "judge_calls": judgments.calls,
        })
        return Signal(score=score, fired=score > self.threshold, details=details)


def sample_budget(state: StepState, sample_tokens: int | None) -> int:
    """Token cap of each sample: ``sample_tokens``, else twice the draft (see `SemanticEntropy`)."""
    if sample_tokens is not None:
        return sample_tokens
    drafted = len(state.draft.token_ids) if state.draft is not None else 0
    return min(state.max_new_tokens, max(MIN_SAMPLE_TOKENS, 2 * drafted))


def draw_kept(state: StepState, n: int, temperature: float, top_p: float,
              sample_tokens: int | None) -> tuple[list[TokenStatistics], list[tuple[str, float]]]:
    """The step's shared samples (`StepState.samples`: drawn once for every trigger with these
    settings) and the non-empty ones as (stripped text, length-normalised log-likelihood)."""
    drawn = state.samples(n, temperature, top_p, sample_budget(state, sample_tokens))
    kept = [(s.text.strip(), sequence_log_likelihood(s.logprobs)) for s in drawn if s.text.strip() and s.logprobs]
    return drawn, kept


def semantic_entropies(semantic_ids: Sequence[int], log_likelihoods: Sequence[float]) -> dict[str, Any]:
    """All three entropies of one step, from cluster ids and length-normalised sample log-likelihoods."""
    cluster_log_probs = logsumexp_by_id(semantic_ids, log_likelihoods)
    return {
        "semantic_entropy": predictive_entropy_rao(cluster_log_probs),
        "discrete_semantic_entropy": cluster_assignment_entropy(semantic_ids),
        "naive_entropy": predictive_entropy(log_likelihoods),
        "cluster_log_probs": cluster_log_probs,
    }


def _describe(clustering: Clustering, texts: list[str], cluster_log_probs: list[float]) -> list[dict[str, Any]]:
    members: list[list[str]] = [[] for _ in clustering.representatives]
    for text, cid in zip(texts, clustering.semantic_ids):
        if text not in members[cid]:
            members[cid].append(text)
    return [
        {"text": rep, "size": size, "probability": math.exp(lp), "members": m}
        for rep, size, lp, m in zip(clustering.representatives, clustering.sizes, cluster_log_probs, members)
    ]


def bind_sampler(judge: EquivalenceJudge, sampler) -> None:
    """An ``lm`` judge built without a model asks the step's own model."""
    for member in getattr(judge, "members", (judge,)):
        if hasattr(member, "sampler") and member.sampler is None:
            member.sampler = sampler


# the sampling settings that semantic entropy and the sample-consistency measures share
SAMPLING_SETTINGS = (
    Setting("samples", int, 10, "sampled drafts per step", range=(2, None)),
    Setting("temperature", float, 1.0, "sampling temperature", range=(0.0, None)),
    Setting("top_p", float, 1.0, "nucleus sampling mass", range=(0.0, 1.0)),
    Setting("judge", str, DEFAULT_JUDGE, "equivalence judge: lexical+embedding, lexical, embedding, lm, nli:MODEL_DIR"),
    Setting("variant", str, "strict", "clustering: strict (mutual entailment) or non-contradiction",
            choices=("strict", "non-contradiction")),
    Setting("sample_tokens", int, None, "token budget per sample (default: the step's)", range=(1, None)),
)

SPECS = (
    TriggerSpec("semantic-entropy", "samples", SemanticEntropy, (
        threshold_setting(None, "fire when the entropy over meaning clusters (nats) exceeds this (default 1.0)"),
        *SAMPLING_SETTINGS,
        Setting("estimator", str, "weighted", "weighted by sequence probability, or discrete cluster frequencies",
                choices=ESTIMATORS),
    ), help="entropy over the meanings of N sampled drafts"),
)
