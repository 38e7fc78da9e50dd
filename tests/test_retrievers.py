"""Retrievers on real indexes: BM25 against the formula worked by hand, FAISS save/reload, RRF, manifests, atomic writes."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import faiss
import numpy as np
import pytest

from corpora.documents import Document, fingerprint
from retrievers import (
    BM25Retriever,
    DenseRetriever,
    HybridRetriever,
    RetrieverError,
    build_index,
    build_retriever,
    load_index,
)
from retrievers.bm25 import Analyzer
from retrievers.embeddings import Encoder

# A corpus small enough to score by hand. Words are chosen so that no stopword list or stemmer is needed.
TINY = [
    Document(id="d0", text="apple banana apple"),
    Document(id="d1", text="banana cherry"),
    Document(id="d2", text="cherry date elder fig"),
    Document(id="d3", title="Grape", text="apple grape"),  # the title is indexed too
    Document(id="d4", text="kiwi lemon mango"),
]
TINY_TOKENS = [  # written out by hand: lower-cased words, title first
    ["apple", "banana", "apple"],
    ["banana", "cherry"],
    ["cherry", "date", "elder", "fig"],
    ["grape", "apple", "grape"],
    ["kiwi", "lemon", "mango"],
]
QUERIES = ["who got the first nobel prize in physics", "when was the eiffel tower built", "largest planet in the solar system"]


def lucene_bm25(query: list[str], corpus: list[list[str]], k1: float, b: float) -> list[float]:
    """Lucene BM25Similarity by hand: idf = ln(1 + (N - df + .5) / (df + .5)); tf / (tf + k1 (1 - b + b |d| / avgdl))."""
    n = len(corpus)
    avgdl = sum(map(len, corpus)) / n
    out = []
    for doc in corpus:
        tf = Counter(doc)
        s = 0.0
        for t in query:
            df = sum(t in d for d in corpus)
            if df == 0 or tf[t] == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            s += idf * tf[t] / (tf[t] + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(s)
    return out


def okapi_bm25(query: list[str], corpus: list[list[str]], k1: float, b: float, epsilon: float = 0.25) -> list[float]:
    """rank-bm25's BM25Okapi by hand: idf = ln((N - df + .5) / (df + .5)), negatives floored at eps x mean idf; tf x (k1 + 1)."""
    n = len(corpus)
    avgdl = sum(map(len, corpus)) / n
    vocab = {t for d in corpus for t in d}
    raw = {t: math.log((n - sum(t in d for d in corpus) + 0.5) / (sum(t in d for d in corpus) + 0.5)) for t in vocab}
    floor = epsilon * sum(raw.values()) / len(raw)
    idf = {t: (v if v >= 0 else floor) for t, v in raw.items()}
    out = []
    for doc in corpus:
        tf = Counter(doc)
        out.append(sum(idf.get(t, 0.0) * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(doc) / avgdl)) for t in query))
    return out


@pytest.fixture(scope="module")
def tiny_bm25() -> BM25Retriever:
    return build_retriever("bm25", TINY, stemmer=None, stopwords=None, progress=False)


@pytest.mark.parametrize("query", ["apple grape", "banana", "cherry fig apple", "apple apple", "zucchini"])
def test_bm25s_scores_equal_lucene_formula_by_hand(tiny_bm25, query):
    expected = lucene_bm25(query.split(), TINY_TOKENS, k1=1.2, b=0.75)
    np.testing.assert_allclose(tiny_bm25.scores(query), expected, rtol=1e-6, atol=1e-7)
    got = tiny_bm25.retrieve(query, 5)
    assert [p.score for p in got] == sorted((p.score for p in got), reverse=True)
    assert got[0].score == pytest.approx(max(expected), rel=1e-6)


def test_bm25_known_value_and_title_indexed(tiny_bm25):
    # "grape" occurs only in d3's title, twice in d3 overall: df=1, N=5, |d3|=3, avgdl=15/5=3
    idf = math.log(1 + (5 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / 3))
    top = tiny_bm25.retrieve("Grape", 1)[0]
    assert (top.id, top.title, top.text) == ("d3", "Grape", "apple grape")
    assert top.score == pytest.approx(expected, rel=1e-6)


def test_bm25_ranking_is_a_total_order(tiny_bm25):
    # "zucchini" occurs nowhere: every document scores 0 and document order decides
    assert [p.id for p in tiny_bm25.retrieve("zucchini", 5)] == ["d0", "d1", "d2", "d3", "d4"]
    assert [p.id for p in tiny_bm25.retrieve("zucchini", 2)] == ["d0", "d1"]
    for q in ["apple", "cherry", "banana grape"]:
        full = [p.id for p in tiny_bm25.retrieve(q, 5)]
        assert all([p.id for p in tiny_bm25.retrieve(q, k)] == full[:k] for k in range(1, 5))


def test_rank_bm25_backend_matches_okapi_formula():
    r = build_retriever("bm25", TINY, backend="rank-bm25", stemmer=None, stopwords=None, k1=1.5, b=0.75, progress=False)
    assert r.backend == "rank-bm25"
    for q in ["apple grape", "banana cherry", "kiwi"]:
        np.testing.assert_allclose(r.scores(q), okapi_bm25(q.split(), TINY_TOKENS, k1=1.5, b=0.75), rtol=1e-9)


def test_default_analyzer_drops_stopwords_and_stems():
    a = Analyzer()
    assert a("The runner is running") == a("runner runs")[:1] + a("running")
    assert "the" not in a("the cat")
    r = build_retriever("bm25", TINY + [Document(id="run", text="marathon running")], progress=False)
    assert r.retrieve("runs", 1)[0].id == "run"


def test_bm25_bad_input(tiny_bm25):
    for k in (0, -1, 1.5, True):
        with pytest.raises(RetrieverError, match="k must be a positive integer"):
            tiny_bm25.retrieve("apple", k)
    with pytest.raises(RetrieverError, match="query is empty"):
        tiny_bm25.retrieve("   ", 3)
    assert [p.id for p in tiny_bm25.retrieve("apple", 100)][:2] == ["d0", "d3"]
    assert len(tiny_bm25.retrieve("apple", 100)) == len(TINY)
    with pytest.raises(RetrieverError, match="unknown BM25 backend"):
        build_retriever("bm25", TINY, backend="lucene")
    with pytest.raises(RetrieverError, match="unknown retriever kind"):
        build_retriever("splade", TINY)
    with pytest.raises(RetrieverError, match="do not apply to a bm25"):
        build_retriever("bm25", TINY, ef_search=10)
    with pytest.raises(RetrieverError, match="has no text"):
        build_retriever("bm25", [*TINY, Document(id="empty", text="  ")])
    with pytest.raises(RetrieverError, match="duplicate document id"):
        build_retriever("bm25", [*TINY, TINY[0]])


def test_progress_bar_only_when_asked(capsys):
    build_retriever("bm25", TINY, progress=True)
    assert "tokenize" in capsys.readouterr().err
    build_retriever("bm25", TINY, progress=False)
    assert "tokenize" not in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["bm25s", "rank-bm25"])
def test_bm25_save_reload_same_results(tmp_path, backend):
    r = build_index("bm25", TINY, tmp_path / "idx", backend=backend, progress=False)
    again = load_index(tmp_path / "idx", expected_fingerprint=fingerprint(TINY))
    assert isinstance(again, BM25Retriever) and again.backend == backend and again.num_documents == 5
    for q in ["apple grape", "cherry", "kiwi mango"]:
        assert [(p.id, p.score, p.title, p.text) for p in again.retrieve(q, 3)] == [
            (p.id, p.score, p.title, p.text) for p in r.retrieve(q, 3)
        ]
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["kind"] == "bm25" and manifest["backend"] == backend and manifest["num_documents"] == 5
    assert manifest["corpus_fingerprint"] == fingerprint(TINY) and manifest["format_version"] == 1


# ---- manifests and damaged directories ------------------------------------------------------


def _edit_manifest(path: Path, **changes) -> None:
    m = json.loads((path / "manifest.json").read_text())
    m.update(changes)
    (path / "manifest.json").write_text(json.dumps(m))


def test_load_index_refuses_mismatches(tmp_path):
    build_index("bm25", TINY, tmp_path / "idx", progress=False)
    with pytest.raises(RetrieverError, match="different corpus"):
        load_index(tmp_path / "idx", expected_fingerprint="0123456789abcdef")
    with pytest.raises(RetrieverError, match="no such index directory"):
        load_index(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RetrieverError, match="no manifest.json"):
        load_index(tmp_path / "empty")
    _edit_manifest(tmp_path / "idx", kind="splade")
    with pytest.raises(RetrieverError, match="unknown index kind 'splade'"):
        load_index(tmp_path / "idx")
    _edit_manifest(tmp_path / "idx", kind="bm25")
    docs_file = tmp_path / "idx" / "docs.jsonl"
    docs_file.write_text(docs_file.read_text().replace("cherry", "cherries"))
    with pytest.raises(RetrieverError, match="does not match the manifest"):
        load_index(tmp_path / "idx")
    (tmp_path / "idx" / "manifest.json").write_text("{not json")
    with pytest.raises(RetrieverError, match="malformed JSON"):
        load_index(tmp_path / "idx")


# ---- atomic writes ----------------------------------------------------------------------------


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_failed_rebuild_leaves_existing_index_intact(tmp_path):
    out = tmp_path / "idx"
    build_index("bm25", TINY, out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # fails while checking the corpus (a document without text) ...
    with pytest.raises(RetrieverError, match="'bad' .* has no text"):
        build_index("bm25", [*TINY[:2], Document(id="bad", text=""), *TINY[2:]], out)
    # ... and after backend files were already written to the temporary directory
    with pytest.raises(TypeError):
        build_index("bm25", [*TINY, Document(id="x", text="xylophone", metadata={"obj": object()})], out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []
    assert load_index(out).retrieve("grape", 1)[0].id == "d3"
    # a successful rebuild replaces it
    build_index("bm25", TINY[:3], out, progress=False)
    assert load_index(out).num_documents == 3 and _leftovers(tmp_path) == []


def test_build_index_refuses_to_replace_a_non_index_directory(tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(RetrieverError, match="not an index"):
        build_index("bm25", TINY, precious)
    assert (precious / "todo.txt").read_text() == "keep me"


# ---- dense and hybrid (real MiniLM embeddings of 200 demo passages) -------------------------


@pytest.fixture(scope="module")
def small_docs(demo_docs) -> list[Document]:
    return demo_docs[:200]


@pytest.fixture(scope="module")
def flat_index(small_docs, tmp_path_factory) -> tuple[DenseRetriever, Path]:
    out = tmp_path_factory.mktemp("faiss") / "flat"
    return build_index("faiss", small_docs, out, progress=False), out


def test_faiss_reload_returns_same_ids_and_scores_without_reembedding(flat_index, monkeypatch):
    fresh, out = flat_index
    encoded: list[int] = []
    real_encode = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, texts, **kw: encoded.append(len(texts)) or real_encode(self, texts, **kw))
    loaded = load_index(out)
    assert encoded == []  # loading read the vectors, it embedded nothing
    assert isinstance(loaded, DenseRetriever) and loaded.index_type == "flat" and loaded.num_documents == 200
    for q in QUERIES:
        a, b = fresh.retrieve(q, 10), loaded.retrieve(q, 10)
        assert [p.id for p in a] == [p.id for p in b]
        assert [p.score for p in a] == [p.score for p in b]
    assert encoded == [1] * 2 * len(QUERIES)  # one query vector per retrieve (fresh and loaded)
    top = loaded.retrieve("who got the first nobel prize in physics", 1)[0]
    assert top.title == "List of Nobel laureates in Physics" and 0.3 < top.score <= 1.0 + 1e-6
    assert len(loaded.retrieve("physics", 1000)) == 200


def test_faiss_manifest_records_model_and_refuses_another(flat_index, tmp_path):
    _, out = flat_index
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["index_type"] == "flat" and manifest["num_documents"] == 200
    with pytest.raises(RetrieverError, match="embedded with"):
        load_index(out, embedding_model="BAAI/bge-small-en-v1.5")
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    _edit_manifest(copy, embedding_model=str(tmp_path / "no-such-model"))
    with pytest.raises(RetrieverError, match="not found"):
        load_index(copy)
    _edit_manifest(copy, embedding_model="sentence-transformers/all-MiniLM-L6-v2")
    (copy / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(RetrieverError, match="damaged or incomplete"):
        load_index(copy)


def test_hybrid_hnsw_fuses_by_rrf_and_reloads(small_docs, flat_index, tmp_path):
    flat, _ = flat_index
    hybrid = build_index("hybrid", small_docs, tmp_path / "hyb", index_type="hnsw", progress=False)
    assert isinstance(hybrid, HybridRetriever)
    assert isinstance(hybrid.dense.index, faiss.IndexHNSWFlat) and hybrid.dense.index_type == "hnsw"
    q = "who got the first nobel prize in physics"
    # HNSW on 200 vectors with efSearch 128 finds the exact neighbours
    assert [p.id for p in hybrid.dense.retrieve(q, 5)] == [p.id for p in flat.retrieve(q, 5)]

    fused = hybrid.retrieve(q, 10)
    assert len(fused) == 10 and fused[0].id == "nqo00000"
    assert len({p.id for p in fused}) == 10
    depth = max(10, hybrid.pool)
    sparse_rank = {p.id: r for r, p in enumerate(hybrid.sparse.retrieve(q, depth), 1)}
    dense_rank = {p.id: r for r, p in enumerate(hybrid.dense.retrieve(q, depth), 1)}
    for p in fused:
        expected = sum(1 / (60 + ranks[p.id]) for ranks in (sparse_rank, dense_rank) if p.id in ranks)
        assert p.score == pytest.approx(expected)
        assert p.metadata["rrf_ranks"] == {n: r[p.id] for n, r in (("bm25", sparse_rank), ("faiss", dense_rank)) if p.id in r}
    assert [p.score for p in fused] == sorted((p.score for p in fused), reverse=True)

    loaded = load_index(tmp_path / "hyb", expected_fingerprint=fingerprint(small_docs))
    assert isinstance(loaded, HybridRetriever)
    manifest = json.loads((tmp_path / "hyb" / "manifest.json").read_text())
    assert (manifest["kind"], manifest["backend"], manifest["index_type"]) == ("hybrid", "bm25s", "hnsw")
    assert [(p.id, p.score) for p in loaded.retrieve(q, 10)] == [(p.id, p.score) for p in fused]
    with pytest.raises(RetrieverError):
        loaded.retrieve(q, 0)


@pytest.mark.slow
def test_embedding_model_loads_from_its_wheel_and_leaves_the_environment_alone():
    """No hub access and no process-wide HF_HUB_OFFLINE: in a fresh interpreter without the offline
    variables and with the hub pointed at a closed port, the encoder loads, encodes, and the
    environment afterwards is the one it started with (once torch and sentence-transformers, which
    set a few variables of their own on import, are loaded)."""
    code = (
        "import json, os\n"
        "import sentence_transformers, torch\n"
        "before = dict(os.environ)\n"
        "from retrievers.embeddings import load_encoder\n"
        "vectors = load_encoder().encode(['a grape', 'a lemon'])\n"
        "print(json.dumps({'shape': list(vectors.shape), 'changed': sorted(set(os.environ.items()) ^ set(before.items()))}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), HF_ENDPOINT="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"shape": [2, 384], "changed": []}


def test_retrieve_many_equals_retrieve_per_query(small_docs, flat_index):
    """FAISS embeds and searches the queries together, hybrid fuses per query, BM25 falls back to a
    loop: each gives every query what `retrieve` gives it (dense scores up to padding's last bits)."""
    from retrievers.base import retrieve_many

    flat, _ = flat_index
    bm25 = build_retriever("bm25", small_docs, progress=False)
    queries = ["who got the first nobel prize in physics", "opec members", "capital of france and its largest city"]
    for retriever in (flat, bm25, HybridRetriever(bm25, flat)):
        many = retrieve_many(retriever, queries, 5)
        alone = [retriever.retrieve(q, 5) for q in queries]
        assert [[p.id for p in ps] for ps in many] == [[p.id for p in ps] for ps in alone]
        assert [p.score for ps in many for p in ps] == pytest.approx([p.score for ps in alone for p in ps], rel=1e-5)
    assert retrieve_many(flat, [], 5) == []
    with pytest.raises(RetrieverError):
        flat.retrieve_many(["ok", "   "], 5)
