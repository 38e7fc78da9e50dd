"""Documents in: JSONL (optionally gzipped) with ``id``/``title``/``text``, and folders of ``.txt``/``.md``.

Errors name the file and the line so that a user can fix a 100k-line corpus without bisecting it.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from corpora.errors import CorpusError

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _record_to_document(rec: Any, where: str, fallback_id: str) -> Document:
    if not isinstance(rec, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    text = rec.get("text", rec.get("contents"))
    title = rec.get("title") or ""
    if isinstance(text, str) and "text" not in rec and "\n" in text and not title:
        # FlashRAG / DPR style: contents = '"Title"\ntext'
        first, _, rest = text.partition("\n")
        title, text = first.strip().strip('"'), rest
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(f"{where}: document has no text (needs a non-empty 'text' field)")
    doc_id = rec.get("id", fallback_id)
    meta = {k: v for k, v in rec.items() if k not in ("id", "title", "text", "contents")}
    return Document(id=str(doc_id), text=text, title=str(title), metadata=meta)


def iter_jsonl(path: Path) -> Iterator[Document]:
    """Yield documents from a JSONL file; a bad line raises CorpusError naming ``file:line``."""
    for doc, _ in _jsonl_documents(path):
        yield doc


def _jsonl_documents(path: Path) -> Iterator[tuple[Document, str]]:
    """(document, "file:line") for each line of a JSONL file."""
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
                yield _record_to_document(rec, where, fallback_id=f"{path.stem}:{lineno}"), where
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read ({exc})") from None


def _text_file_document(f: Path, doc_id: str) -> Document:
    try:
        text = f.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{f}: cannot read ({exc})") from None
    if not text.strip():
        raise CorpusError(f"{f}: document has no text")
    return Document(id=doc_id, text=text, title=f.stem.replace("_", " "))


def iter_text_file(path: Path) -> Iterator[Document]:
    """A single ``.txt``/``.md`` file as one document (id = file name)."""
    yield _text_file_document(path, path.name)


def iter_text_folder(path: Path) -> Iterator[Document]:
    """One document per ``.txt``/``.md`` file; the id is the path relative to the folder."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise CorpusError(f"{path}: folder has no .txt or .md files")
    for f in files:
        yield _text_file_document(f, f.relative_to(path).as_posix())


def iter_documents(paths: Iterable[str | Path]) -> Iterator[Document]:
    """Stream documents from JSONL files, .txt/.md files or folders (ids may repeat across files)."""
    for doc, _ in _located_documents(paths):
        yield doc


def _located_documents(paths: Iterable[str | Path]) -> Iterator[tuple[Document, str]]:
    """(document, where it came from: "file:line" or the text file) for every document of ``paths``."""
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise CorpusError(f"{path}: no such file or folder")
        if path.is_dir():
            yield from ((d, str(path / d.id)) for d in iter_text_folder(path))
        elif path.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz")):
            yield from _jsonl_documents(path)
        elif path.suffix.lower() in TEXT_SUFFIXES:
            yield from ((d, str(path)) for d in iter_text_file(path))
        else:
            raise CorpusError(f"{path}: unsupported corpus format (use .jsonl, .jsonl.gz, or a folder of .txt/.md)")


def load_documents(paths: str | Path | Iterable[str | Path]) -> list[Document]:
    """Load every document from one or more JSONL files / text folders; ids must be unique."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    docs: list[Document] = []
    seen: dict[str, str] = {}
    for d, where in _located_documents(paths):
        if d.id in seen:
            raise CorpusError(f"{where}: duplicate document id {d.id!r} (first at {seen[d.id]})")
        seen[d.id] = where
        docs.append(d)
    if not docs:
        raise CorpusError(f"{', '.join(map(str, paths))}: corpus is empty")
    return docs


def fingerprint(docs: Iterable[Document]) -> str:
    """A content hash of the corpus: an index built from other documents must not be reused silently."""
    h = hashlib.sha256()
    for d in docs:
        for part in (d.id, d.title, d.text):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
    return h.hexdigest()[:16]


def write_jsonl(docs: Iterable[Document], path: Path) -> None:
    """Write documents as JSONL (gzip when the name ends in .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps({"id": d.id, "title": d.title, "text": d.text, **d.metadata}, ensure_ascii=False) + "\n")
