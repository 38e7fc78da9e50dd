"""Counts and co-occurrence counts of phrases in an infini-gram index (QuCo-RAG's corpus statistics).

A phrase is counted under every surface form it takes in running text: with and without a leading
space (BPE gives " Paris" and "Paris" different ids) and capitalised ("nobel prize" → "Nobel
prize", "Nobel Prize"). The forms are OR-ed: `count` sums their exact counts (no form is kept
that extends another, so no position is counted twice) and positions come from one CNF clause.

Co-occurrence has infini-gram's AND semantics (occurrences of the rarer phrase with an occurrence
of the other starting within ``window`` tokens, in the same document) but is computed here from
the two phrases' positions rather than by ``count_cnf(a AND b)``: infini-gram 2.6 merges the
nearest match on the left and on the right into one span and then drops the span if it crosses a
document boundary, so "B ⏎ A … B" across two documents loses the in-document pair (see
tests/test_quco.py::test_cooccurrence_near_a_document_boundary). Positions are read straight from
the suffix array (``table.N``) over the rank ranges that ``find`` returns, so one ``find`` per
surface form serves both the count and the positions. A phrase seen more than
``max_clause_freq`` times is subsampled evenly (as infini-gram does); co-occurrence counts that
involve one are scaled by the rarer phrase's sampling rate and flagged `Count.approx`.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from corpora.cache import cache_dir
from corpora.errors import CorpusError
from corpora.infinigram_index import (
    TOKENIZER_DIR, CorpusIndexError, encode_batch, load_tokenizer, read_manifest,
    token_dtype_for, tokenizer_fingerprint,
)

DEFAULT_WINDOW = 1000  # QuCo-RAG queries the infini-gram API with max_diff_tokens=1000
DEFAULT_MAX_CLAUSE_FREQ = 50000  # infini-gram's default: above this a clause is subsampled


@dataclass(frozen=True)
class Count:
    """A corpus count; ``approx`` when infini-gram subsampled a clause (count is an estimate)."""

    count: int
    approx: bool = False


@dataclass(frozen=True)
class _Positions:
    """Where a phrase occurs: sorted byte offsets per shard, and the factor that scales a count
    over these (possibly subsampled) positions back to the whole corpus."""

    ptrs_by_shard: list[np.ndarray]
    scale: float
    approx: bool


def surface_forms(phrase: str) -> list[str]:
    """The phrase as written and capitalised, each with and without a leading space.

    Capitalised means title-cased for an all-lower-case phrase ("nobel prize" → "Nobel Prize",
    how names appear in text) and first letter upper-cased otherwise ("the Beatles" → "The
    Beatles", sentence-initial). Every form costs one look-up, so no more forms than that."""
    p = " ".join(phrase.split())
    if not p:
        return []
    if p.islower():
        cased = [p, " ".join(w[:1].upper() + w[1:] for w in p.split(" "))]
    else:
        cased = [p, p[0].upper() + p[1:]]
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
                 max_clause_freq: int, max_diff_tokens: int, token_width: int) -> None:
        self.index_dir = index_dir
        self.engine = engine
        self.tokenizer = tokenizer
        self.tokens = tokens
        self.documents = documents
        self.max_clause_freq = max_clause_freq
        self.max_diff_tokens = max_diff_tokens
        self._width = token_width
        self._token_max = engine.token_id_max
        # Byte offset of every document's separator, per shard: a position's document is a bisection.
        self._doc_starts = [np.memmap(p, dtype="<u8", mode="r") for p in _shard_files(index_dir, "offset")]
        # The suffix arrays: entry r is the byte offset of the r-th suffix, in ptr_size bytes.
        self._tables = [np.memmap(p, dtype=np.uint8, mode="r") for p in _shard_files(index_dir, "table")]
        self._ptr_sizes = []
        for table, ds in zip(self._tables, _shard_files(index_dir, "tokenized")):
            n_tok = ds.stat().st_size // token_width
            if not n_tok or table.size % n_tok or not 1 <= table.size // n_tok <= 8:
                raise CorpusIndexError(f"{ds.parent}: {ds.name} and its suffix array do not match")
            self._ptr_sizes.append(table.size // n_tok)
        self.clause = lru_cache(maxsize=65536)(self._clause)
        # The index never changes, so look-ups are cached: a question's entities recur at every step.
        self._ranges = lru_cache(maxsize=65536)(self._find_ranges)
        self._positions = lru_cache(maxsize=64)(self._find_positions)  # ≤ max_clause_freq × 8 B each

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
        from corpora.extras import require

        InfiniGramEngine = require("quco", "opening a corpus index (infini-gram)", ["infini_gram.engine"]).InfiniGramEngine

        d = Path(index_dir).expanduser().resolve()
        if not d.is_dir():
            raise CorpusIndexError(f"{d}: corpus index folder not found (build one with `arag corpus index`)")
        shards = _shard_files(d, "tokenized")
        missing = [f"{kind}.{p.suffix[1:]}" for p in shards for kind in ("table", "offset")
                   if not (d / f"{kind}.{p.suffix[1:]}").exists()]
        if not shards or missing:
            raise CorpusIndexError(f"{d}: not a complete infini-gram index (missing {', '.join(missing) or 'tokenized.0'})")
        for name, value in (("max_clause_freq", max_clause_freq), ("max_diff_tokens", max_diff_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise CorpusIndexError(f"{name} must be a positive integer, got {value!r}")
        manifest = read_manifest(d)
        if manifest is not None:
            saved = load_tokenizer(d / TOKENIZER_DIR)
            expected = manifest["tokenizer_fingerprint"]
            if tokenizer_fingerprint(saved) != expected:
                raise CorpusIndexError(f"{d}: the tokenizer saved in the index does not match its manifest")
            if tokenizer is not None and tokenizer_fingerprint(load_tokenizer(tokenizer)) != expected:
                raise CorpusIndexError(f"{d}: index was built with another tokenizer than {_name(tokenizer)}; "
                                       "rebuild it with this tokenizer or open it without one")
            tok, dtype = saved, manifest["token_dtype"]
            eos, vocab = manifest["eos_token_id"], manifest["vocab_size"]  # read_manifest checked these are ints
            n_tokens, n_docs = manifest["tokens"], manifest["documents"]
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
            engine = InfiniGramEngine(index_dir=str(_engine_path(d)), eos_token_id=eos, vocab_size=vocab_size,
                                      version=4, token_dtype=dtype, max_clause_freq=max_clause_freq,
                                      max_diff_tokens=max_diff_tokens)
        except Exception as exc:  # the C++ engine raises plain RuntimeErrors on bad files
            raise CorpusIndexError(f"{d}: cannot open infini-gram index ({exc})") from None
        if n_docs is None:
            n_docs = engine.get_total_doc_cnt()
            n_tokens = sum(p.stat().st_size for p in shards) // width - n_docs  # minus one separator per document
        return cls(d, engine, tok, n_tokens, n_docs, max_clause_freq, max_diff_tokens, width)

    # -- queries -----------------------------------------------------------------------------
    def _clause(self, phrase: str) -> tuple[tuple[int, ...], ...]:
        forms = surface_forms(phrase)
        if not forms:
            return ()
        seqs = [tuple(ids) for ids in encode_batch(self.tokenizer, forms)]
        return tuple(s for s in _drop_extensions(seqs) if all(0 <= t < self._token_max for t in s))

    def count(self, phrase: str) -> Count:
        """Occurrences of ``phrase`` in any of its surface forms (exact: the forms' counts are
        summed, and no form is kept that extends another, so no position is counted twice)."""
        return Count(sum(end - start for shard in self._ranges(phrase) for start, end in shard))

    def clear_caches(self) -> None:
        """Forget cached phrase ids, rank ranges and positions (benchmarks time cold look-ups)."""
        for cache in (self.clause, self._ranges, self._positions):
            cache.cache_clear()

    def _find_ranges(self, phrase: str) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per shard, the suffix-array rank ranges of the phrase's surface forms (one ``find`` each)."""
        ranges: list[list[tuple[int, int]]] = [[] for _ in self._tables]
        for seq in self.clause(phrase):
            res = self.engine.find(list(seq))
            if "error" in res:
                raise CorpusError(f"infini-gram query failed: {res['error']}")
            for s, (start, end) in enumerate(res["segment_by_shard"]):
                if end > start:
                    ranges[s].append((int(start), int(end)))
        return tuple(tuple(r) for r in ranges)

    def _find_positions(self, phrase: str) -> _Positions:
        ranges = self._ranges(phrase)
        total = sum(end - start for shard in ranges for start, end in shard)
        step = -(-total // self.max_clause_freq) if total > self.max_clause_freq else 1
        ptrs_by_shard, found = [], 0
        for table, size, shard in zip(self._tables, self._ptr_sizes, ranges):
            ranks = np.concatenate([np.arange(a, b, step, dtype=np.int64) for a, b in shard]) if shard else np.empty(0, np.int64)
            raw = np.zeros((len(ranks), 8), dtype=np.uint8)  # little-endian, zero-extended to u64
            raw[:, :size] = table[(ranks * size)[:, None] + np.arange(size)]
            ptrs_by_shard.append(np.sort(raw.view("<u8").ravel()))
            found += len(ranks)
        return _Positions(ptrs_by_shard, total / found if found else 1.0, step > 1)

    def cooccurrence(self, a: str, b: str, window: int | None = None) -> Count:
        """Occurrences of the rarer of ``a``/``b`` with an occurrence of the other starting at most
        ``window`` tokens before or after it, in the same document (``window`` defaults to
        ``max_diff_tokens``)."""
        if window is None:
            window = self.max_diff_tokens
        if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
            raise CorpusError(f"window must be a positive number of tokens, got {window!r}")
        na, nb = self.count(a).count, self.count(b).count
        if na == 0 or nb == 0:  # exact counts: no positions needed
            return Count(0)
        pa, pb = self._positions(a), self._positions(b)
        if na > nb:
            pa, pb, na, nb = pb, pa, nb, na
        reach = window * self._width
        hits = 0
        for s, starts in enumerate(self._doc_starts):
            xa = pa.ptrs_by_shard[s] if s < len(pa.ptrs_by_shard) else np.empty(0, np.uint64)
            xb = pb.ptrs_by_shard[s] if s < len(pb.ptrs_by_shard) else np.empty(0, np.uint64)
            if not len(xa) or not len(xb):
                continue
            doc_a = np.searchsorted(starts, xa, side="right")
            doc_b = np.searchsorted(starts, xb, side="right")
            ia, ib = xa.astype(np.int64), xb.astype(np.int64)
            nxt = np.searchsorted(xb, xa, side="left")  # first b at or after each a
            r = np.minimum(nxt, len(xb) - 1)
            right = (nxt < len(xb)) & (doc_b[r] == doc_a) & (ib[r] - ia <= reach)
            l = np.maximum(nxt - 1, 0)
            left = (nxt > 0) & (doc_b[l] == doc_a) & (ia - ib[l] <= reach)
            hits += int(np.count_nonzero(left | right))
        # Scaling by the rarer phrase's sampling rate only: a subsampled partner can hide a pair
        # (an estimate from below), never invent one, so the result stays within the rarer count.
        return Count(min(round(hits * pa.scale), na), pa.approx or pb.approx)

    def frequency_per_million(self, phrase: str) -> float:
        """Occurrences per million indexed tokens: comparable across corpora of different sizes."""
        return self.count(phrase).count * 1e6 / max(self.tokens, 1)


def score_from_count(count: float) -> float:
    """−log(1 + count): continuous, monotone, 0 for an unseen phrase, so sweeps can threshold it."""
    return 0.0 - math.log1p(max(count, 0.0))  # 0.0 - x: no "-0.0" in traces


def _shard_files(index_dir: Path, kind: str) -> list[Path]:
    """``kind.0``, ``kind.1``, … in the engine's shard order (it sorts paths as strings)."""
    return sorted((p for p in index_dir.glob(f"{kind}.*") if p.suffix[1:].isdigit()), key=str)


# The engine sorts a folder's files into shards by substring of their *full path*, so a folder such
# as /data/portable/ (which contains "table") makes it mis-sort every file and crash the process.
_ENGINE_KEYWORDS = ("tokenized", "table", "offset", "metadata", "metaoff", "unigram")


def _engine_path(index_dir: Path) -> Path:
    """``index_dir``, or a symlink to it whose path contains none of the engine's file keywords."""
    if not any(k in str(index_dir) for k in _ENGINE_KEYWORDS):
        return index_dir
    name = "ix-" + hashlib.sha256(str(index_dir).encode()).hexdigest()[:16]  # hex never spells a keyword
    for base in (cache_dir() / "links", Path(tempfile.gettempdir()) / "arag-links"):
        if any(k in str(base) for k in _ENGINE_KEYWORDS):
            continue
        link = base / name
        try:
            base.mkdir(parents=True, exist_ok=True)
            if not (link.is_symlink() and link.resolve() == index_dir):
                tmp = base / f".{name}.{os.getpid()}"
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(index_dir, target_is_directory=True)
                os.replace(tmp, link)
            return link
        except OSError:
            continue
    raise CorpusIndexError(f"{index_dir}: infini-gram cannot open a folder whose path contains any of "
                           f"{', '.join(_ENGINE_KEYWORDS)}; move or rename it")


def _name(tokenizer: Any) -> str:
    return str(tokenizer) if isinstance(tokenizer, (str, Path)) else getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
