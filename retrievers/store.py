"""Index directories on disk: a manifest, the documents, the backend's files; written atomically.

An index is only useful with the corpus it was built from and (for dense kinds) the model that
embedded it, so the manifest records both and `load_index` refuses a directory that does not
match instead of returning silently wrong passages (`retrievers.build.load_index`). Builds go to a temporary sibling directory and
are renamed into place only once complete, so a failed or interrupted build never damages an
index that already works.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ContextManager, Sequence

from corpora.atomic import atomic_directory as _atomic_directory
from corpora.atomic import stranded_index_hint
from corpora.documents import Document, fingerprint, iter_jsonl, write_jsonl
from corpora.errors import CorpusError
from retrievers.base import RetrieverError
from retrievers.kinds import INDEX_KINDS

MANIFEST_NAME = "manifest.json"
DOCS_NAME = "docs.jsonl"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    """What an index directory holds; `options` keeps the build parameters needed to query it the same way."""

    kind: str
    corpus_fingerprint: str
    num_documents: int
    backend: str | None = None
    index_type: str | None = None
    embedding_model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


_FIELD_ORDER = ("format_version", "kind", "backend", "index_type", "embedding_model", "corpus_fingerprint", "num_documents", "created", "options")


def write_manifest(path: Path, manifest: Manifest) -> None:
    fields = asdict(manifest)
    ordered = {k: fields[k] for k in _FIELD_ORDER}
    (path / MANIFEST_NAME).write_text(json.dumps(ordered, indent=2) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> Manifest:
    """Parse ``path/manifest.json``; anything missing or malformed is a one-line RetrieverError."""
    if not path.exists():
        raise RetrieverError(f"{path}: no such index directory{stranded_index_hint(path)}")
    if not path.is_dir():
        raise RetrieverError(f"{path}: not a directory (an index is a directory with {MANIFEST_NAME})")
    mpath = path / MANIFEST_NAME
    if not mpath.is_file():
        raise RetrieverError(f"{path}: not an index directory (no {MANIFEST_NAME})")
    try:
        raw = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RetrieverError(f"{mpath}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise RetrieverError(f"{mpath}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise RetrieverError(f"{mpath}: expected a JSON object")
    missing = [k for k in ("format_version", "kind", "corpus_fingerprint", "num_documents") if k not in raw]
    if missing:
        raise RetrieverError(f"{mpath}: missing field(s) {', '.join(missing)}")
    if raw["format_version"] != FORMAT_VERSION:
        raise RetrieverError(f"{mpath}: unsupported format_version {raw['format_version']!r} (this version reads {FORMAT_VERSION})")
    if raw["kind"] not in INDEX_KINDS:
        raise RetrieverError(f"{mpath}: unknown index kind {raw['kind']!r} (expected one of {', '.join(INDEX_KINDS)})")
    if not isinstance(raw.get("options", {}), dict):
        raise RetrieverError(f"{mpath}: field 'options' must be a JSON object")
    known = set(Manifest.__dataclass_fields__)
    return Manifest(**{k: v for k, v in raw.items() if k in known})


def write_documents(path: Path, docs: Sequence[Document]) -> None:
    write_jsonl(docs, path / DOCS_NAME)


def read_documents(path: Path, manifest: Manifest) -> list[Document]:
    """The stored corpus, checked against the manifest so a swapped or truncated docs file is caught."""
    dpath = path / DOCS_NAME
    if not dpath.is_file():
        raise RetrieverError(f"{path}: index is incomplete (no {DOCS_NAME})")
    try:
        docs = list(iter_jsonl(dpath))
    except CorpusError as exc:
        raise RetrieverError(f"index documents unreadable: {exc}") from None
    if len(docs) != manifest.num_documents or fingerprint(docs) != manifest.corpus_fingerprint:
        raise RetrieverError(f"{dpath}: does not match the manifest (documents changed after indexing); rebuild the index")
    return docs


def atomic_directory(out_dir: str | Path) -> ContextManager[Path]:
    """`corpora.atomic.atomic_directory` for retriever indexes: a refusal is a RetrieverError."""
    return _atomic_directory(out_dir, marker=MANIFEST_NAME, error=RetrieverError)


def damaged(path: Path, exc: BaseException) -> RetrieverError:
    """A backend file that will not load: one line, naming the directory (library messages can span lines)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return RetrieverError(f"{path}: index files are damaged or incomplete ({first})")


class IndexDirectory:
    """What every retriever shares about saving: backend files first, documents, the manifest last.

    The manifest is written last so a directory that has one is complete; `save` goes through
    `atomic_directory` so it never damages what is already at the destination.
    """

    docs: list[Document]

    def manifest(self) -> Manifest:
        raise NotImplementedError

    def write_payload(self, path: Path) -> None:
        """Write the backend's own files (everything but documents and manifest) into ``path``."""
        raise NotImplementedError

    def write_to(self, path: Path) -> None:
        self.write_payload(path)
        write_documents(path, self.docs)
        write_manifest(path, self.manifest())

    def save(self, directory: str | Path) -> None:
        with atomic_directory(directory) as tmp:
            self.write_to(tmp)
