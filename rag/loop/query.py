"""Forming the retrieval query from a drafted step, as FLARE does ("masked query"): tokens the
model was unsure of are dropped so a confidently wrong guess does not steer retrieval."""
from __future__ import annotations

import math
from typing import Callable, Sequence

from triggers.protocols import TokenStatistics

Detokenize = Callable[[Sequence[str]], str]


def masked_draft(draft: TokenStatistics, detokenize: Detokenize, mask_below: float) -> str:
    """The draft with every token whose probability is below ``mask_below`` removed."""
    tokens = getattr(draft, "tokens", None) or []
    kept = [t for t, lp in zip(tokens, draft.logprobs) if math.exp(lp) >= mask_below]
    return detokenize(kept).strip()


def form_query(question: str, draft: TokenStatistics | None, detokenize: Detokenize | None = None,
               mask_below: float = 0.4) -> str:
    """Question + masked draft; the question alone when there is no draft (pre-generation check)."""
    if draft is None or detokenize is None or not draft.logprobs:
        return question
    extra = masked_draft(draft, detokenize, mask_below)
    return f"{question} {extra}".strip() if extra else question
