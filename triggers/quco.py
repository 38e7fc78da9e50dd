"""QuCo-style trigger: retrieve when the pretraining corpus gives the model no grounds to know.

QuCo-RAG (Min et al., 2025) reads objective corpus statistics instead of the model's confidence:
- before generation, the question's entities are rare in the pretraining corpus (their mean count
  is below τ) → a long-tail knowledge gap → retrieve with the question;
- during generation, a drafted sentence makes a claim whose head and tail never co-occur in the
  corpus (AND count < 1 within a token window) → likely hallucinated → retrieve and regenerate.

Deviation from QuCo: it extracts (head, relation, tail) triples with a distilled 0.5B model; here
the head is taken from the question and the tail is an answer entity, both from spaCy
(`corpora.entities`). Which question entity heads the claim is the ``pairing``:
- ``all`` (default): the minimum over every (question entity × answer entity) pair, so one
  generic question entity that never meets the answer fires it;
- ``any``: an answer entity is supported when it co-occurs with *any* question entity; the check
  fires when some answer entity co-occurs with none (max over question entities, then min over
  answer entities), so a generic or mis-extracted question entity cannot fire it alone;
- ``rarest``: the question's most specific entity (the lowest corpus count) heads every pair.
The default is the one with the best mean ROC-AUC against closed-book errors over three shared sets
and three corpus samples (``benchmarks/quco_pairing.py``); all three were at chance there (docs/triggers/quco.md).
When the question has no entity the answer's entities are counted alone (QuCo's two-element tuples).

Scores are continuous so benchmarks can sweep them: runtime −log(1 + the pairing's count); before
generation −log(1 + mean frequency per million tokens). Both are 0 at "never seen" and fall as
the evidence grows; the trigger fires when the count (frequency) is below its threshold.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from corpora.entities import extract_entities
from corpora.statistics import DEFAULT_WINDOW, CorpusStatistics, score_from_count
from corpora.settings import Setting
from triggers.base import Signal, StepState, TriggerConfigError, check_threshold
from triggers.spec import TriggerSpec, from_log_count, threshold_setting

# Runtime: fire when some (question entity, answer entity) pair never co-occurs (QuCo: count < 1).
DEFAULT_THRESHOLD = 1.0
# Before generation: QuCo's τ = 10³ occurrences in OLMo-2's ~4·10¹² tokens = 2.5·10⁻⁴ per million.
# On a proxy corpus of a few million tokens this means "every question entity is absent".
DEFAULT_QUESTION_THRESHOLD = 2.5e-4
PAIRINGS = ("all", "any", "rarest")
DEFAULT_PAIRING = "all"
ENTITIES_MEMO = "entities"  # StepState.memo key prefix: (ENTITIES_MEMO, text) → tuple of entities


def check_pairing(pairing: str) -> str:
    if pairing not in PAIRINGS:
        raise TriggerConfigError(f"unknown quco pairing {pairing!r}; choose from {', '.join(PAIRINGS)}")
    return pairing


def _overlaps(a: str, b: str) -> bool:
    """An answer entity that restates a question entity ("France" / "France's", "Tower" / "Eiffel
    Tower") is no new claim. Whole words only: "US" does not restate "Russia"."""
    x, y = a.lower(), b.lower()
    def within(needle: str, hay: str) -> bool:
        return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", hay) is not None
    return within(x, y) or within(y, x)


@dataclass
class QuCo:
    statistics: CorpusStatistics
    threshold: float = DEFAULT_THRESHOLD
    question_threshold: float = DEFAULT_QUESTION_THRESHOLD
    window: int = DEFAULT_WINDOW
    extractor: Callable[[str], Sequence[str]] = field(default=extract_entities, repr=False)
    pairing: str = DEFAULT_PAIRING
    name: str = "quco"

    def __post_init__(self) -> None:
        check_pairing(self.pairing)
        self.threshold = check_threshold(self.threshold)
        self.question_threshold = check_threshold(self.question_threshold, "question_threshold")
        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window <= 0:
            raise TriggerConfigError(f"window must be a positive number of tokens, got {self.window!r}")

    def entities(self, state: StepState, text: str) -> tuple[str, ...]:
        """Entities of ``text``, computed once per step whichever trigger asks first."""
        return state.memo((ENTITIES_MEMO, text), lambda: tuple(self.extractor(text)))

    # -- before generation -------------------------------------------------------------------
    def check_question(self, state: StepState) -> Signal:
        ents = self.entities(state, state.question)
        stats = self.statistics
        counts = {e: stats.count(e) for e in ents}
        details: dict[str, Any] = {
            "stage": "question", "entities": list(ents), "threshold_per_million": self.question_threshold,
            "counts": {e: c.count for e, c in counts.items()}, "corpus_tokens": stats.tokens,
        }
        if not ents:  # nothing to look up: no evidence of a gap (QuCo does not retrieve either)
            details["mean_per_million"] = None
            return Signal(score=score_from_count(1e6), fired=False, details=details)
        mean_fpm = sum(c.count for c in counts.values()) / len(counts) * 1e6 / max(stats.tokens, 1)
        details["mean_per_million"] = mean_fpm
        details["approx"] = any(c.approx for c in counts.values())
        return Signal(score=score_from_count(mean_fpm), fired=mean_fpm < self.question_threshold, details=details)

    # -- during generation -------------------------------------------------------------------
    def score(self, state: StepState) -> Signal:
        text = state.draft.text if state.draft is not None else ""
        q_ents = self.entities(state, state.question)
        a_ents = [a for a in self.entities(state, text) if not any(_overlaps(a, q) for q in q_ents)]
        stats = self.statistics
        details: dict[str, Any] = {
            "stage": "step", "question_entities": list(q_ents), "answer_entities": a_ents,
            "threshold": self.threshold, "window": self.window, "pairing": self.pairing,
        }
        if q_ents:
            heads = list(q_ents)
            if self.pairing == "rarest":
                heads = [min(q_ents, key=lambda q: stats.count(q).count)]  # ties: the first in the question
                details["head"] = heads[0]
            pairs = [{"pair": [q, a], **self._count(stats.cooccurrence(q, a, self.window))}
                     for q in heads for a in a_ents]
            details["pairs"] = pairs
            checks = pairs
            if self.pairing == "any":  # each answer entity is judged by its best-attested question entity
                checks = [max((p for p in pairs if p["pair"][1] == a), key=lambda p: p["count"]) for a in a_ents]
        else:
            checks = [{"entity": a, **self._count(stats.count(a))} for a in a_ents]
            details["singles"] = checks
        if not checks:
            # No claim to verify: score as if the pair were seen at every corpus position.
            details["min_count"] = None
            return Signal(score=score_from_count(stats.tokens), fired=False, details=details)
        low = min(c["count"] for c in checks)
        details["min_count"] = low
        details["approx"] = any(c["approx"] for c in checks)
        return Signal(score=score_from_count(low), fired=low < self.threshold, details=details)

    @staticmethod
    def _count(c) -> dict[str, Any]:
        return {"count": c.count, "approx": c.approx}


def build_quco(
    threshold: float | None = None,
    corpus_index: str | Path | None = None,
    question_threshold: float | None = None,
    window: int | None = None,
    tokenizer: Any = None,
    corpus_tokenizer: Any = None,
    max_clause_freq: int | None = None,
    pairing: str | None = None,
    lm: Any = None,
) -> QuCo:
    """Build from CLI/config options.

    ``corpus_index``: an index folder (built by `arag corpus index`, or a plain infini-gram folder
    with ``corpus_tokenizer``); without it, the demo index, built once from the shipped demo corpus
    with ``tokenizer`` (a tokenizer folder or object; default: the tokenizer of ``lm``, the model
    the loop runs, which is all this trigger reads from it).
    """
    from corpora.infinigram_index import demo_index_dir
    from corpora.statistics import DEFAULT_MAX_CLAUSE_FREQ

    pairing = check_pairing(DEFAULT_PAIRING if pairing is None else pairing)
    window = DEFAULT_WINDOW if window is None else window
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        raise TriggerConfigError(f"window must be a positive number of tokens, got {window!r}")
    if corpus_index is None:
        tokenizer = tokenizer if tokenizer is not None else getattr(lm, "tokenizer", None)
        if tokenizer is None:
            raise TriggerConfigError("quco needs --corpus-index DIR, or a tokenizer to build the demo index")
        corpus_index, corpus_tokenizer = demo_index_dir(tokenizer), None
    stats = CorpusStatistics.open(corpus_index, corpus_tokenizer, max_diff_tokens=window,
                                  max_clause_freq=max_clause_freq or DEFAULT_MAX_CLAUSE_FREQ)
    return QuCo(
        statistics=stats,
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        question_threshold=DEFAULT_QUESTION_THRESHOLD if question_threshold is None else question_threshold,
        window=window,
        pairing=pairing,
    )


# where the corpus statistics come from (QuCo and the entity-frequency signal share them)
INDEX_SETTINGS = (
    Setting("corpus_index", str, None, "corpus-statistics index folder (default: the demo index, built once)"),
    Setting("corpus_tokenizer", str, None, "tokenizer of a plain infini-gram index folder"),
    Setting("window", int, DEFAULT_WINDOW, "co-occurrence window in tokens", range=(1, None)),
    Setting("max_clause_freq", int, None, "infini-gram's max_clause_freq for co-occurrence counts", range=(1, None)),
)

SPECS = (
    TriggerSpec("quco", "index look-up", build_quco, (
        threshold_setting(DEFAULT_THRESHOLD, "fire when the answer entities' co-occurrence score exceeds this"),
        Setting("question_threshold", float, DEFAULT_QUESTION_THRESHOLD,
                "pre-generation check: fire when the question entities' frequency per million tokens is below this"),
        *INDEX_SETTINGS,
        Setting("pairing", str, DEFAULT_PAIRING, "which question entities an answer entity is paired with", choices=PAIRINGS),
    ), help="corpus co-occurrence of the question's and the draft's entities", extra="quco", runtime=("lm", "tokenizer"),
                threshold_of=from_log_count),
)
