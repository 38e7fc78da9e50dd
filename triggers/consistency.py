"""Consistency of the samples semantic entropy already draws: lexical similarity, number of semantic
sets, and the spectrum / degrees of the samples' similarity graph.

Definitions are LM-Polygraph's (IINemo/lm-polygraph, ``src/lm_polygraph/estimators/``), after Lin,
Trivedi & Sun, "Generating with Confidence" (arXiv:2305.19187) and Fomicheva et al. (2020):
- ``lexical_similarity.py`` (``LexicalSimilarity``, metric ``rougeL``): the mean ROUGE-L F-measure
  over all pairs of samples, with a minus sign. Here the score is ``1 - mean`` (the same ranking,
  in [0, 1]); tokens are SQuAD-normalised (`corpora.text`) instead of rouge-score's stemmed ones.
- ``num_sem_sets.py`` (``NumSemSets``): the number of connected components of the graph whose edges
  join samples that are equivalent in both directions.
- ``eig_val_laplacian.py`` (``EigValLaplacian``): with the symmetric similarity matrix W, degrees
  D = diag(W·1) and the normalised Laplacian L = I - D^-1/2 W D^-1/2, ``U = Σ_k max(0, 1 - λ_k)``,
  a continuous number of semantic sets (exactly the number of sets when W is a union of cliques).
- ``deg_mat.py`` (``DegMat``): ``U = trace(m·I - D) / m² = 1 - Σ_ij W_ij / m²`` for m samples.

The similarity used here: LM-Polygraph fills W with an NLI model's entailment probabilities; this
project's equivalence judges (lexical, embedding, lm, NLI) give decisions. W_ij = 1 when the step's
judge says samples i and j mean the same (the verdict semantic entropy clusters with, read from the
step's shared verdict cache, `clustering.shared_judgments`), W_ii = 1; otherwise, for ``eigval`` and
``degree``, the judge's graded similarity where it has one (the embedding judge's cosine, clipped
to [0, 1]; with ``lexical+embedding`` the embedding member's), else 0. Why graded: a small model's
samples are rarely judged equivalent, and with 0/1 entries all-singleton steps all get the same
score (`eigval` = N on each of 20 NQ questions with the default model, docs/triggers/semantic-entropy.md), whereas
cosines still tell "ten different cities" from "ten different topics". ``num_sem_sets`` counts
components of the decisions alone, as LM-Polygraph's uses a binary entailment > contradiction graph.

Costs: the samples are the step's shared samples (`StepState.samples`, the same settings as
semantic entropy, so ``semantic-entropy+eigval`` samples once); the matrix needs every distinct
pair judged once (at most m(m-1)/2 judge calls, fewer when semantic entropy judged some already).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.sparse.csgraph import connected_components

from corpora.text import normalize_answer
from triggers.base import Signal, StepState, TriggerConfigError, check_threshold
from triggers.clustering import shared_judgments
from triggers.semantic_entropy import SAMPLING_SETTINGS, SampleSettings
from triggers.spec import TriggerSpec, threshold_setting

# measure → (trigger name, default threshold). Not calibrated: with N = 10 samples, fire at more
# than two meanings (sets, eigval), at degree uncertainty > 0.5, at lexical dissimilarity > 0.5.
MEASURES = {
    "lexical_similarity": ("lexical-similarity", 0.5),
    "num_sem_sets": ("num-sem-sets", 2.0),
    "eigval": ("eigval", 2.0),
    "degree": ("degree", 0.5),
}


# -- pure functions -------------------------------------------------------------------------------
def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F-measure of two token lists: LCS length over both lengths (Lin, 2004; β = 1)."""
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(b), lcs / len(a)
    return 2 * p * r / (p + r)


def lexical_dissimilarity(texts: Sequence[str]) -> float:
    """1 - mean pairwise ROUGE-L over SQuAD-normalised tokens (0 for fewer than two texts)."""
    toks = [normalize_answer(t).split() for t in texts]
    sims = [rouge_l(toks[i], toks[j]) for i in range(len(toks)) for j in range(i + 1, len(toks))]
    return 1.0 - float(np.mean(sims)) if sims else 0.0


def num_semantic_sets(w: np.ndarray) -> int:
    """Connected components of the graph of equivalent pairs (W_ij > 0.5)."""
    return int(connected_components(np.asarray(w) > 0.5, directed=False)[0])


def eigval_laplacian(w: np.ndarray) -> float:
    """Σ_k max(0, 1 - λ_k) over the eigenvalues of the normalised Laplacian of symmetric W."""
    w = np.asarray(w, dtype=float)
    d = 1.0 / np.sqrt(w.sum(axis=1))
    lap = np.eye(len(w)) - d[:, None] * w * d[None, :]
    return float(np.clip(1.0 - np.linalg.eigvalsh(lap), 0.0, None).sum())


def degree_uncertainty(w: np.ndarray) -> float:
    """trace(m·I - D) / m² = 1 - Σ W / m²: 0 when every pair is equivalent, 1 - 1/m when none is."""
    w = np.asarray(w, dtype=float)
    return float(1.0 - w.sum() / len(w) ** 2)


# -- the trigger ------------------------------------------------------------------------------------
@dataclass
class SampleConsistency(SampleSettings):
    """Fire when the step's samples disagree: ``measure`` is one of `MEASURES`; the sampling and judge
    settings (`SampleSettings`) mean what they mean for semantic entropy (keep them equal to share
    its samples and verdicts)."""

    measure: str = "eigval"
    threshold: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise TriggerConfigError(f"unknown measure {self.measure!r}; choose from {', '.join(MEASURES)}")
        self.check_sampling()
        self.name = self.name or MEASURES[self.measure][0]
        self.threshold = check_threshold(MEASURES[self.measure][1] if self.threshold is None else self.threshold)

    def check_question(self, state: StepState) -> Signal | None:
        return None

    def similarity_matrix(self, state: StepState, texts: Sequence[str], graded: bool) -> np.ndarray:
        """W over the samples from the step's shared judge verdicts, graded where the judge can (module docstring)."""
        judgments = shared_judgments(state, self.judge, self.variant)
        prepare = getattr(self.judge, "prepare", None)
        if prepare is not None:
            prepare(state.question, list(dict.fromkeys(texts)))
        scorers = [m.similarity for m in getattr(self.judge, "members", (self.judge,)) if hasattr(m, "similarity")]
        m = len(texts)
        w = np.eye(m)
        for i in range(m):
            for j in range(i + 1, m):
                same = judgments.same(texts[i], texts[j])
                if not same and graded and scorers:
                    w[i, j] = max(0.0, min(1.0, max(f(state.question, texts[i], texts[j]) for f in scorers)))
                else:
                    w[i, j] = float(same)
                w[j, i] = w[i, j]
        return w

    def score(self, state: StepState) -> Signal:
        drawn, kept = self.draw(state)
        texts = [t for t, _ in kept]
        details: dict[str, Any] = {"measure": self.measure, "samples": len(drawn), "empty_samples": len(drawn) - len(kept),
                                   "threshold": self.threshold, "sample_calls": state.sample_calls}
        if not texts:  # every sample ended the step at once: nothing to disagree about
            return Signal(score=0.0, fired=False, details=details)
        if self.measure == "lexical_similarity":
            score = lexical_dissimilarity(texts)
        else:
            w = self.similarity_matrix(state, texts, graded=self.measure != "num_sem_sets")
            details.update(judge=self.judge.name, variant=self.variant,
                           judge_calls=shared_judgments(state, self.judge, self.variant).calls)
            score = {"num_sem_sets": num_semantic_sets, "eigval": eigval_laplacian, "degree": degree_uncertainty}[self.measure](w)
        details[self.measure] = score
        return Signal(score=float(score), fired=score > self.threshold, details=details)


def _measure(measure: str, help: str) -> TriggerSpec:
    name, default = MEASURES[measure][:2]

    def build(**settings: Any) -> SampleConsistency:
        return SampleConsistency(measure=measure, **settings)

    return TriggerSpec(name, "samples", build, (
        threshold_setting(default, "fire when the samples' disagreement exceeds this"), *SAMPLING_SETTINGS), help=help)


SPECS = (
    _measure("lexical_similarity", "1 - mean pairwise ROUGE-L of N sampled drafts"),
    _measure("num_sem_sets", "the number of meaning clusters among N sampled drafts"),
    _measure("eigval", "the graph-Laplacian eigenvalue sum over N samples' similarity"),
    _measure("degree", "1 - mean degree of N samples' similarity graph"),
)
