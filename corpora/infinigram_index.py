"""Build an infini-gram suffix-array index of a corpus, pre-tokenised with a local tokenizer.

Why pre-tokenise here instead of letting `infini_gram.indexing` do it: its tokenizer names
("gpt2", "llama", "olmo") download from a hub, which fails offline; and the index must be in the
*same* tokenisation as the phrases we later count. So we write infini-gram's on-disk format
ourselves (``tokenized.0``: every document is ``\\xff\\xff`` (u16) or ``\\xff\\xff\\xff\\xff`` (u32)
followed by its token ids, little-endian; ``offset.0``: the u64 byte offset of each document) and
run only the suffix-array step (``python -m infini_gram.indexing``, which skips tokenisation when
those two files already exist). The tokenizer is saved inside the index and fingerprinted in
``manifest.json``, so an index is never queried with ids from another vocabulary.
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from corpora.atomic import atomic_directory
from corpora.cache import cache_dir
from corpora.documents import Document, iter_documents
from corpora.errors import CorpusError
from corpora.hub import is_hub_id

MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"
FORMAT = "adaptive-rag/infini-gram-v4"
# What `read_manifest` requires: the tokenizer check and the engine's settings, plus the build figures.
_INT_FIELDS = ("documents", "tokens", "text_bytes", "eos_token_id", "vocab_size")
_REQUIRED_FIELDS = ("token_dtype", "tokenizer_fingerprint", *_INT_FIELDS)
# A fixed text whose token ids, together with the vocabulary, pin down a tokenizer: two tokenizers
# with the same vocabulary but other merges or normalisation still encode it differently.
_PROBE = "Über 1,234 naïve Nobel-Prize winners' café in São Paulo (1889) — ÆØÅ 東京 e.g. Müller's"
_BATCH = 256
_PARALLEL_MIN_BYTES = 8 << 20


class CorpusIndexError(CorpusError):
    """An index directory is missing, incomplete, or was built with another tokenizer."""


# -- tokenizers ------------------------------------------------------------------------------
def load_tokenizer(spec: Any):
    """A tokenizer object, or one loaded from a local folder / cached hub id (never downloaded)."""
    if hasattr(spec, "get_vocab") and callable(spec):
        return spec
    if spec is None:
        raise CorpusIndexError("no tokenizer given (pass a tokenizer folder or object)")
    from transformers import AutoTokenizer

    path = Path(str(spec)).expanduser()
    try:
        if path.is_dir():
            return AutoTokenizer.from_pretrained(str(path))
        if path.exists():
            raise CorpusIndexError(f"{spec}: not a tokenizer folder")
        if not is_hub_id(spec):
            raise CorpusIndexError(f"{spec}: no such tokenizer folder")
        return AutoTokenizer.from_pretrained(str(spec), local_files_only=True)
    except CorpusIndexError:
        raise
    except (OSError, ValueError) as exc:
        raise CorpusIndexError(f"cannot load tokenizer {str(spec)!r} (local folders and already-cached ids only): "
                               f"{str(exc).splitlines()[0]}") from None


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the vocabulary and of the ids of a probe text (see ``_PROBE``)."""
    h = hashlib.sha256()
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode("utf-8"))
    h.update(json.dumps(encode_batch(tokenizer, [_PROBE])[0]).encode("utf-8"))
    return h.hexdigest()[:16]


def encode_batch(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids without special tokens (no BOS/EOS inside the corpus or the query phrases)."""
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def token_dtype_for(tokenizer) -> str:
    """u16 while every id fits below the u16 document separator 0xFFFF, else u32."""
    return "u16" if len(tokenizer) < 0xFFFF else "u32"


# -- documents -------------------------------------------------------------------------------
def document_text(doc: Document) -> str:
    """What gets counted: the title (it names the entity a DPR-style passage is about) and the text."""
    return f"{doc.title}\n{doc.text}" if doc.title and not doc.text.startswith(doc.title) else doc.text


# -- building --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildReport:
    """What was indexed and how long it took (the benchmark's build throughput)."""

    path: Path
    documents: int
    tokens: int
    text_bytes: int
    tokenize_seconds: float
    index_seconds: float

    @property
    def seconds(self) -> float:
        return self.tokenize_seconds + self.index_seconds

    @property
    def mb_per_second(self) -> float:
        """Build throughput over the UTF-8 text indexed (tokenisation + suffix array)."""
        return self.text_bytes / 1e6 / max(self.seconds, 1e-9)


def _write_tokenized(docs: Iterable[Document], tokenizer, out: Path, dtype: str, progress: bool) -> tuple[int, int, int]:
    """Write ``tokenized.0`` and ``offset.0``; return (documents, tokens, text bytes)."""
    np_dtype = np.uint16 if dtype == "u16" else np.uint32
    sep = b"\xff" * np.dtype(np_dtype).itemsize
    n_docs = n_tokens = n_bytes = offset = 0
    from tqdm import tqdm

    bar = tqdm(desc="tokenising", unit=" doc", disable=not progress, file=sys.stderr)
    with (out / "tokenized.0").open("wb") as ds, (out / "offset.0").open("wb") as od:
        def flush(batch: list[str]) -> None:
            nonlocal n_docs, n_tokens, offset
            for ids in encode_batch(tokenizer, batch):
                content = sep + np.asarray(ids, dtype=np_dtype).tobytes()
                od.write(np.uint64(offset).tobytes())
                ds.write(content)
                offset += len(content)
                n_tokens += len(ids)
            n_docs += len(batch)
            bar.update(len(batch))

        batch: list[str] = []
        for doc in docs:
            text = document_text(doc)
            n_bytes += len(text.encode("utf-8"))
            batch.append(text)
            if len(batch) == _BATCH:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    bar.close()
    return n_docs, n_tokens, n_bytes


def _run_suffix_array(tmp: Path, dtype: str, cpus: int, mem_gib: int, progress: bool) -> None:
    """The suffix-array step of `infini_gram.indexing` (Rust indexer shipped inside the wheel).

    Below a few MB one thread is as fast, and the Rust merge step fails on tiny files (< ~2 kB)
    when split across threads.
    """
    if (tmp / "tokenized.0").stat().st_size < _PARALLEL_MIN_BYTES:
        cpus = 1
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ulimit = 20000 if hard == resource.RLIM_INFINITY else min(20000, hard)
    cmd = [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(tmp), "--save_dir", str(tmp),
           "--token_dtype", dtype, "--cpus", str(cpus), "--mem", str(mem_gib), "--ulimit", str(ulimit)]
    # Its progress goes to our stderr (never stdout: `--json` output must stay clean).
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if progress:
                sys.stderr.write(line)
    if proc.returncode != 0 or not (tmp / "table.0").exists():
        why = next((x.strip() for x in reversed(lines) if x.strip()), "")
        raise CorpusIndexError(f"infini-gram indexing failed (exit {proc.returncode}){': ' + why if why else ''}")


def build_index(
    source: Iterable[str | Path] | Sequence[Document],
    out: str | Path,
    tokenizer: Any,
    *,
    progress: bool = True,
    cpus: int | None = None,
    mem_gib: int = 4,
    description: str = "",
) -> BuildReport:
    """Index documents (or the files/folders named in ``source``) into ``out``, atomically.

    ``out`` is replaced only when the new index is complete; an existing folder that is not an
    index is never overwritten.
    """
    from corpora.extras import require

    require("quco", "building a corpus index (infini-gram)", ["infini_gram"])
    out = Path(out).expanduser().resolve()
    tok = load_tokenizer(tokenizer)
    items = list(source) if not isinstance(source, (str, Path)) else [source]
    if not items:
        raise CorpusError("corpus is empty: no documents or paths given")
    if isinstance(items[0], Document):
        docs: Iterable[Document] = items
        sources = [description or f"{len(items)} documents"]
    else:
        seen: set[Path] = set()
        for p in items:
            if not Path(p).exists():
                raise CorpusError(f"{p}: no such file or folder")
            if Path(p).resolve() in seen:
                # it would double every count, and a corpus followed by itself makes the suffix-array
                # merge compare suffixes for the corpus's whole length (hours instead of seconds)
                raise CorpusError(f"{p}: listed twice")
            seen.add(Path(p).resolve())
        docs = iter_documents(items)
        sources = [str(Path(p).resolve()) for p in items]
    dtype = token_dtype_for(tok)
    with atomic_directory(out, marker=MANIFEST, error=CorpusIndexError) as tmp:
        t0 = time.perf_counter()
        n_docs, n_tokens, n_bytes = _write_tokenized(docs, tok, tmp, dtype, progress)
        if n_docs == 0 or n_tokens == 0:
            raise CorpusError(f"corpus is empty: {', '.join(sources)} has no text to index")
        t1 = time.perf_counter()
        _run_suffix_array(tmp, dtype, cpus or os.cpu_count() or 1, mem_gib, progress)
        t2 = time.perf_counter()
        tok.save_pretrained(str(tmp / TOKENIZER_DIR))
        manifest = {
            "format": FORMAT, "token_dtype": dtype, "documents": n_docs, "tokens": n_tokens,
            "text_bytes": n_bytes, "tokenizer_fingerprint": tokenizer_fingerprint(tok),
            "eos_token_id": _eos_id(tok), "vocab_size": len(tok), "sources": sources,
            "tokenize_seconds": round(t1 - t0, 3), "index_seconds": round(t2 - t1, 3),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return BuildReport(out, n_docs, n_tokens, n_bytes, t1 - t0, t2 - t1)


def _eos_id(tok) -> int:
    eos = tok.eos_token_id
    return int(eos) if eos is not None else 0


def read_manifest(index_dir: Path) -> dict | None:
    """The manifest of an index built here (checked: this format, every field `CorpusStatistics`
    reads, integers where counts are), or None for a plain infini-gram index folder."""
    path = index_dir / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusIndexError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise CorpusIndexError(f"{path}: expected a JSON object")
    if manifest.get("format") != FORMAT:
        raise CorpusIndexError(f"{path}: unknown index format {manifest.get('format')!r} (this version reads {FORMAT})")
    missing = [k for k in _REQUIRED_FIELDS if k not in manifest]
    if missing:
        raise CorpusIndexError(f"{path}: missing field(s) {', '.join(missing)}")
    not_int = [k for k in _INT_FIELDS if not isinstance(manifest[k], int) or isinstance(manifest[k], bool)]
    if not_int:
        raise CorpusIndexError(f"{path}: field(s) {', '.join(not_int)} must be integers")
    return manifest


# -- the demo index --------------------------------------------------------------------------
def demo_index_dir(tokenizer: Any, progress: bool = False) -> Path:
    """The index of the shipped demo corpus in ``tokenizer``'s ids, built on first use (≈ 2 s).

    Keyed by the corpus file's hash and the tokenizer fingerprint; a file lock keeps two processes
    from building it at once, and `build_index` writes it atomically.
    """
    import fcntl

    from corpora.demo import DEMO_CORPUS, demo_documents

    tok = load_tokenizer(tokenizer)
    corpus_hash = hashlib.sha256(DEMO_CORPUS.read_bytes()).hexdigest()[:12]
    root = cache_dir() / "corpus-index"
    out = root / f"demo-{corpus_hash}-{tokenizer_fingerprint(tok)}"
    if (out / MANIFEST).exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / MANIFEST).exists():
            build_index(demo_documents(), out, tok, progress=progress, description=f"demo corpus {DEMO_CORPUS.name}")
    return out
