"""Equivalence judges: do two answers to a question mean the same thing?

Semantic entropy (Kuhn et al., ICLR 2023; Farquhar et al., Nature 2024) clusters sampled answers by
*bidirectional entailment*. Every judge answers the plain question ``equivalent(question, a, b)``;
a judge that can tell the direction and kind of the relation (an NLI model) also offers
``implications(question, a, b) -> (a ⇒ b, b ⇒ a)`` as three-way verdicts, and only then does the
clustering variant (strict vs non-contradiction) make a difference. The protocols live in
`triggers.judges.base`; this module builds judges by name.

Judge specs (``make_judge``): ``lexical``, ``embedding``, ``lexical+embedding`` (either says yes),
``lm`` (the configured LM asked yes/no), ``nli:MODEL`` (a local sequence-classification NLI model).
"""
from __future__ import annotations

from triggers.base import TriggerConfigError
from triggers.judges.base import EitherJudge, EquivalenceJudge


JUDGE_NAMES = ("lexical", "embedding", "lexical+embedding", "lm", "nli:MODEL")
# Settings chosen on the dev half of the labelled pairs of benchmarks/judge_accuracy.py (docs/triggers/semantic-entropy.md):
# lexical+embedding had the best pair accuracy and clustering ARI of the offline judges.
# (the lexical and embedding judges' own defaults come from the same run).
DEFAULT_JUDGE = "lexical+embedding"
COMBINED_COSINE = 0.9  # the embedding member of lexical+embedding: lexical already catches near matches


def make_judge(spec: str | EquivalenceJudge) -> EquivalenceJudge:
    """Build a judge from its spec. An ``lm`` judge is built without a model: the semantic-entropy
    trigger hands it the step's own model when it scores."""
    if not isinstance(spec, str):
        return spec
    spec = spec.strip()
    if spec.startswith("nli:") and spec[4:].strip():
        from triggers.judges.nli import NLIJudge

        return NLIJudge.load(spec[4:].strip())
    parts = [p.strip() for p in spec.split("+") if p.strip()]
    if not parts:
        raise TriggerConfigError(f"empty judge spec; choose from {', '.join(JUDGE_NAMES)}")
    judges = [_one(p, combined=len(parts) > 1) for p in parts]
    return judges[0] if len(judges) == 1 else EitherJudge(tuple(judges))


def _one(name: str, combined: bool) -> EquivalenceJudge:
    if name == "lexical":
        from triggers.judges.lexical import LexicalJudge

        return LexicalJudge()
    if name == "embedding":
        from triggers.judges.embedding import EmbeddingJudge

        return EmbeddingJudge(threshold=COMBINED_COSINE) if combined else EmbeddingJudge()
    if name == "lm":
        from triggers.judges.lm import LMJudge

        return LMJudge()
    raise TriggerConfigError(f"unknown judge {name!r}; choose from {', '.join(JUDGE_NAMES)}")
