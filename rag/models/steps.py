"""Where a step of an answer ends: a sentence boundary found by a real segmenter, or a line break.

Why not stop strings: ``". "`` splits "U.S. Army", "Dr. Smith", "John A. Smith" and list markers
("1. Paris"), and a ``"\\n"`` stop string that is cut off makes the next draft start with the same
line break, so lists ended after their first line. Here a step ends only once the *next* step has
visibly begun (a non-space character after the boundary's whitespace), the boundary is confirmed
by spaCy's rule-based ``sentencizer`` (a blank English pipeline: its tokenizer knows abbreviations)
or is a line break, and the whitespace after it belongs to the next step — so the steps of an
answer concatenate to exactly the text the model wrote, newlines included.

Cheap per token: `SentenceEnd.end` first looks for a candidate (sentence punctuation or a line
break followed by whitespace and more text) with one regular expression; spaCy (~50 µs on a
48-token step) runs only when there is one.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Protocol, Sequence, runtime_checkable

from rag.models.lm import Generation

# a sentence can end after . ! ? … (possibly closed by quotes/brackets) followed by whitespace and more text
_CANDIDATE = re.compile(r"[.!?…][\"'”’)\]]*\s+\S")
_LINE_BREAK = re.compile(r"\S([ \t]*)\n\s*\S")
# a "sentence" that ends in a list marker ("1.", "a)", "Here they are: 2.") starts a list item, it does not
# end one; the same rule keeps an initial ("John A. Smith") whole
_LIST_MARKER = re.compile(r"(^|\s)(\d{1,2}|[A-Za-z])[.)]$")


@runtime_checkable
class StepEnd(Protocol):
    """Decides where a step ends while it is being generated (the model calls it per token)."""

    def end(self, text: str) -> int | None:
        """Where the first complete step of ``text`` ends (``text[:end]`` is the step), once the
        next step has begun in ``text``; None while no step has ended."""
        ...

    def safe(self, text: str) -> int:
        """A position that no later ``end`` of this text (extended by more tokens) can fall before:
        text up to it may be streamed."""
        ...


@lru_cache(maxsize=1)
def _sentencizer():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


class SentenceEnd:
    """A step is a sentence or a line: see the module docstring."""

    def end(self, text: str) -> int | None:
        cuts = []
        line = _LINE_BREAK.search(text)
        if line is not None:
            cuts.append(line.start() + 1)
        if _CANDIDATE.search(text, 0, cuts[0] if cuts else len(text)):
            sent = self._sentence_end(text)
            if sent is not None:
                cuts.append(sent)
        return min(cuts) if cuts else None

    @staticmethod
    def _sentence_end(text: str) -> int | None:
        lead = len(text) - len(text.lstrip())
        sents = list(_sentencizer()(text[lead:]).sents)
        for sent, nxt in zip(sents, sents[1:]):
            end = lead + sent.end_char
            if _LIST_MARKER.search(sent.text):
                continue
            # a boundary is followed by whitespace and then the next sentence's text
            if end < len(text) and text[end].isspace() and nxt.text.strip():
                return end
        return None

    def safe(self, text: str) -> int:
        # every end is followed by whitespace that the step does not keep: hold back from the last whitespace
        m = re.search(r"\s+\S*$", text)
        return m.start() if m else len(text)


def held_by_stops(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could still begin one of ``stops``."""
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:k]):
                hold = k
                break
    return hold


def first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """Where the earliest stop string starts in ``text`` and which one (the shorter one on a tie), or None."""
    hits = [(text.find(s), s) for s in stops if s and s in text]
    return min(hits) if hits else None


def truncate(g: Generation, cut: int, detokenize: Callable[[Sequence[str]], str], stop: str | None = None) -> Generation:
    """``g`` cut to ``g.text[:cut]``, keeping the statistics of the tokens whose text starts before the cut."""
    keep = 0
    while keep < len(g.tokens) and len(detokenize(g.tokens[:keep])) < cut:
        keep += 1
    return Generation(text=g.text[:cut], token_ids=g.token_ids[:keep], tokens=g.tokens[:keep],
                      logprobs=g.logprobs[:keep], entropies=g.entropies[:keep], finished=False,
                      prompt_tokens=g.prompt_tokens, approximate_entropy=g.approximate_entropy, stop=stop,
                      top_logprobs=g.top_logprobs[:keep])


REPETITION = "repetition"  # `Generation.stop` of a sequence ended because it fell into a loop


def loops(token_ids: Sequence[int], max_period: int = 12, min_repeats: int = 3, min_tokens: int = 8) -> bool:
    """Whether the sequence ends in a degenerate loop: one block of at most ``max_period`` tokens
    repeated at least ``min_repeats`` times and over at least ``min_tokens`` tokens ("very very" is fine,
    "the City of the City of the City of" is not)."""
    n = len(token_ids)
    for period in range(1, max_period + 1):
        repeats = max(min_repeats, -(-min_tokens // period))
        if n < period * repeats:
            continue
        block = list(token_ids[n - period:])
        if all(list(token_ids[n - (k + 1) * period:n - k * period]) == block for k in range(1, repeats)):
            return True
    return False


def loop_end(token_ids: Sequence[int]) -> int | None:
    """The length of the shortest prefix that ends in a loop (where a model checking per token stops)."""
    return next((j for j in range(1, len(token_ids) + 1) if loops(token_ids[:j])), None)
