"""Counts and co-occurrence counts of phrases in an infini-gram index (QuCo-RAG's corpus statistics).

A phrase is counted under every surface form it takes in running text: with and without a leading
space (BPE gives " Paris" and "Paris" different ids) and capitalised ("nobel prize" → "Nobel
prize", "Nobel Prize"). The forms are OR-ed as one CNF clause, so a position is counted once
whichever form sits there. Co-occurrence is infini-gram's AND: occurrences of the rarer phrase
with an occurrence of the other within ``window`` tokens in the same document.

Counts are exact unless a clause matches more than ``max_clause_freq`` positions, in which case
infini-gram subsamples and says so; `Count.approx` carries that flag to the caller.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from corpora.errors import CorpusError
from corpora.infinigram_index import (
    FORMAT, TOKENIZER_DIR, CorpusIndexError, encode_batch, load_tokenizer, read_manifest,
    token_dtype_for, tokenizer_fingerprint,
)

DEFAULT_WINDOW = 1000  # QuCo-RAG queries the infini-gram API with max_diff_tokens=1000
DEFAULT_MAX_CLAUSE_FREQ = 50000  # infini-gram's default: above this a clause is subsampled


@dataclass(frozen=True)
class Count:
    """A corpus count; ``approx`` when infini-gram subsampled a clause (count is an estimate)."""

    count: int
    approx: bool = False


def surface_forms(phrase: str) -> list[str]:
    """The phrase as written, first letter capitalised, and title-cased, each with and without a
    leading space; duplicates removed."""
    p = " ".join(phrase.split())
    if not p:
        return []
    cased = [p, p[0].upper() + p[1:]]
    if p.islower():
        cased.append(" ".join(w[:1].upper() + w[1:] for w in p.split(" ")))
    forms: list[str] = []
    for c in cased:
        for f in (c, " " + c):
            if f not in forms:
                forms.append(f)
    return forms


def _drop_extensions(seqs: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Keep only sequences no other kept sequence is a prefix of: a position matching ``a b c``
    also matches ``a b``, and counting both would count it twice."""
    out: list[tuple[int, ...]] = []
    for s in sorted(set(seqs), key=len):
        if s and not any(s[: len(k)] == k for k in out):
            out.append(s)
    return out


class CorpusStatistics:
    """An opened index: `count`, `cooccurrence`, `frequency_per_million`.

    Open with `CorpusStatistics.open(dir)` for an index built by `build_index` (its tokenizer is
    inside), or `open(dir, tokenizer=...)` for a plain infini-gram index folder.
    """

    def __init__(self, index_dir: Path, engine: Any, tokenizer: Any, tokens: int, documents: int,
                 max_clause_freq: int, max_diff_tokens: int) -> None:
        self.index_dir = index_dir
        self.engine = engine
        self.tokenizer = tokenizer
        self.tokens = tokens
        self.documents = documents
        self.max_clause_freq = max_clause_freq
        self.max_diff_tokens = max_diff_tokens
        self._token_max = engine.token_id_max
        self.clause = lru_cache(maxsize=65536)(self._clause)

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        index_dir: str | Path,
        tokenizer: Any = None,
        *,
        token_dtype: str | None = None,
        max_clause_freq: int = DEFAULT_MAX_CLAUSE_FREQ,
        max_diff_tokens: int = DEFAULT_WINDOW,
    ) -> "CorpusStatistics":
        """Open an index. With a manifest, ``tokenizer`` (optional) must be the one it was built
        with; without one (a plain infini-gram folder) ``tokenizer`` is required."""
        from infini_gram.engine import InfiniGramEngine

        d = Path(index_dir).expanduser().resolve()
        if not d.is_dir():
            raise CorpusIndexError(f"{d}: corpus index folder not found (build one with `arag corpus index`)")
        shards = sorted(d.glob("tokenized.*"))
        missing = [f"{kind}.{p.suffix[1:]}" for p in shards for kind in ("table", "offset")
                   if not (d / f"{kind}.{p.suffix[1:]}").exists()]
        if not shards or missing:
            raise CorpusIndexError(f"{d}: not a complete infini-gram index (missing {', '.join(missing) or 'tokenized.0'})")
        for name, value in (("max_clause_freq", max_clause_freq), ("max_diff_tokens", max_diff_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise CorpusIndexError(f"{name} must be a positive integer, got {value!r}")
        manifest = read_manifest(d)
        if manifest is not None:
            if manifest.get("format") != FORMAT:
                raise CorpusIndexError(f"{d}: unknown index format {manifest.get('format')!r}")
            saved = load_tokenizer(d / TOKENIZER_DIR)
            expected = manifest["tokenizer_fingerprint"]
            if tokenizer_fingerprint(saved) != expected:
                raise CorpusIndexError(f"{d}: the tokenizer saved in the index does not match its manifest")
            if tokenizer is not None and tokenizer_fingerprint(load_tokenizer(tokenizer)) != expected:
                raise CorpusIndexError(f"{d}: index was built with another tokenizer than {_name(tokenizer)}; "
                                       "rebuild it with this tokenizer or open it without one")
            tok, dtype = saved, manifest["token_dtype"]
            eos, vocab = int(manifest["eos_token_id"]), int(manifest["vocab_size"])
            n_tokens, n_docs = int(manifest["tokens"]), int(manifest["documents"])
        else:
            if tokenizer is None:
                raise CorpusIndexError(f"{d}: plain infini-gram index without a manifest; pass the tokenizer it was built with")
            tok = load_tokenizer(tokenizer)
            dtype = token_dtype or token_dtype_for(tok)
            eos, vocab, n_tokens, n_docs = None, len(tok), None, None
        width = {"u8": 1, "u16": 2, "u32": 4}.get(dtype)
        if width is None:
            raise CorpusIndexError(f"unknown token dtype {dtype!r} (u8, u16 or u32)")
        eos = eos if eos is not None else int(tok.eos_token_id or 0)
        # The engine only uses vocab_size to bound ids; for u8/u16 that bound is the dtype's.
        vocab_size = {"u8": 2**8 - 1, "u16": 2**16 - 1}.get(dtype, max(vocab, eos + 1))
        try:
            engine = InfiniGramEngine(index_dir=str(d), eos_token_id=eos, vocab_size=vocab_size,
                                      version=4, token_dtype=dtype, max_clause_freq=max_clause_freq,
                                      max_diff_tokens=max_diff_tokens)
        except Exception as exc:  # the C++ engine raises plain RuntimeErrors on bad files
            raise CorpusIndexError(f"{d}: cannot open infini-gram index ({exc})") from None
        if n_docs is None:
            n_docs = engine.get_total_doc_cnt()
            n_tokens = sum(p.stat().st_size for p in shards) // width - n_docs  # minus one separator per document
        return cls(d, engine, tok, n_tokens, n_docs, max_clause_freq, max_diff_tokens)

    # -- queries -----------------------------------------------------------------------------
    def _clause(self, phrase: str) -> tuple[tuple[int, ...], ...]:
        forms = surface_forms(phrase)
        if not forms:
            return ()
        seqs = [tuple(ids) for ids in encode_batch(self.tokenizer, forms)]
        return tuple(s for s in _drop_extensions(seqs) if all(0 <= t < self._token_max for t in s))

    def _cnf_count(self, phrases: list[str], window: int | None) -> Count:
        cnf = []
        for p in phrases:
            clause = self.clause(p)
            if not clause:  # a phrase no token sequence can match occurs nowhere
                return Count(0)
            cnf.append([list(s) for s in clause])
        res = self.engine.count_cnf(cnf, max_clause_freq=self.max_clause_freq,
                                    max_diff_tokens=window or self.max_diff_tokens)
        if "error" in res:
            raise CorpusError(f"infini-gram query failed: {res['error']}")
        return Count(int(res["count"]), bool(res["approx"]))

    def count(self, phrase: str) -> Count:
        """Occurrences of ``phrase`` in any of its surface forms."""
        return self._cnf_count([phrase], None)

    def cooccurrence(self, a: str, b: str, window: int | None = None) -> Count:
        """Occurrences of the rarer of ``a``/``b`` with the other within ``window`` tokens (start to
        start) in the same document; ``window`` defaults to ``max_diff_tokens``."""
        if window is not None and (not isinstance(window, int) or window <= 0):
            raise CorpusError(f"window must be a positive number of tokens, got {window!r}")
        return self._cnf_count([a, b], window)

    def frequency_per_million(self, phrase: str) -> float:
        """Occurrences per million indexed tokens: comparable across corpora of different sizes."""
        return self.count(phrase).count * 1e6 / max(self.tokens, 1)

    def describe(self) -> dict[str, Any]:
        return {"index": str(self.index_dir), "tokens": self.tokens, "documents": self.documents,
                "max_clause_freq": self.max_clause_freq, "max_diff_tokens": self.max_diff_tokens}


def score_from_count(count: float) -> float:
    """−log(1 + count): continuous, monotone, 0 for an unseen phrase, so sweeps can threshold it."""
    return -math.log1p(max(count, 0.0))


def _name(tokenizer: Any) -> str:
    return str(tokenizer) if isinstance(tokenizer, (str, Path)) else getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
