"""Documents in (JSONL, .gz, text folders, FlashRAG `contents`) and word-window chunking."""
from __future__ import annotations

import gzip
import json

import pytest

from corpora.chunking import chunk_words
from corpora.documents import Document, fingerprint, load_documents
from corpora.errors import CorpusError


def test_jsonl_gz_and_folder(tmp_path):
    gz = tmp_path / "a.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(json.dumps({"id": "x", "title": "T", "text": "hello"}) + "\n\n")
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.md").write_text("# One\nfirst")
    (folder / "sub" / "two.txt").write_text("second")
    (folder / "skip.bin").write_bytes(b"\0")
    docs = load_documents([gz, folder])
    assert [d.id for d in docs] == ["x", "one.md", "sub/two.txt"]
    assert docs[0].title == "T" and docs[2].text == "second"


def test_flashrag_contents_field_splits_title(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_text(json.dumps({"id": "0", "contents": '"Evan Morris"\nEvan Morris was a lobbyist.'}) + "\n")
    (d,) = load_documents(p)
    assert d.title == "Evan Morris" and d.text == "Evan Morris was a lobbyist."


@pytest.mark.parametrize("content, needle", [
    ('{"id": 1, "text": "ok"}\n[1, 2]\n', "f.jsonl:2: expected a JSON object"),
    ('{"id": 1, "text": "  "}\n', "f.jsonl:1: document has no text"),
    ('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', "duplicate document id"),
    ("", "corpus is empty"),
])
def test_bad_jsonl(tmp_path, content, needle):
    p = tmp_path / "f.jsonl"
    p.write_text(content)
    with pytest.raises(CorpusError, match=needle):
        load_documents(p)


def test_unsupported_and_empty_folder(tmp_path):
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(CorpusError, match="unsupported corpus format"):
        load_documents(tmp_path / "x.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="no .txt or .md files"):
        load_documents(empty)


def test_chunking_windows_overlap():
    words = [f"w{i}" for i in range(25)]
    chunks = chunk_words([Document(id="d", text=" ".join(words))], size=10, overlap=3)
    got = [c.text.split() for c in chunks]
    assert got[0] == words[0:10] and got[1] == words[7:17] and got[2] == words[14:24] and got[3] == words[21:25]
    assert [c.id for c in chunks] == ["d#0", "d#1", "d#2", "d#3"]
    assert all(c.metadata["parent_id"] == "d" for c in chunks)
    short = Document(id="s", text="only five words here now")
    assert chunk_words([short], size=10, overlap=3) == [short]
    with pytest.raises(CorpusError):
        chunk_words([short], size=5, overlap=5)


def test_fingerprint_changes_with_content():
    a = [Document(id="1", text="x")]
    assert fingerprint(a) == fingerprint([Document(id="1", text="x")])
    assert fingerprint(a) != fingerprint([Document(id="1", text="y")])


def test_demo_corpus_ships_with_licence(demo_docs):
    from corpora.demo import DEMO_DIR, demo_questions

    assert len(demo_docs) == 2600
    assert (DEMO_DIR / "LICENSE.md").exists()
    texts = " ".join(d.text.lower() for d in demo_docs)
    for q in demo_questions():
        assert any(a.lower() in texts for a in q["answers"]), q
