"""The Elasticsearch retriever against real Elasticsearch 9 nodes that this module starts (retrievers/elasticsearch/node/launcher.py).

No fakes: the session fixture builds the node from Maven Central jars (once; cached in ~/.m2 and
retrievers/elasticsearch/node/maven/target) and runs it on 127.0.0.1. The two-node test starts its own
cluster. Skips only when the machine has no Maven or no Java 21+ JDK to run a node with (fails under CI).
Credentials and TLS are tested against a secured node in test_elasticsearch_security.py.
"""
from __future__ import annotations

import json

import pytest

from corpora.documents import Document, load_documents
from retrievers import build_retriever
from retrievers.elasticsearch.connection import ElasticsearchError, ElasticsearchIndexMissing, ElasticsearchUnreachable
from retrievers.elasticsearch.retriever import ElasticsearchRetriever

pytestmark = pytest.mark.elasticsearch

N_QUESTIONS = 50


@pytest.fixture(scope="session")
def es_node(es_tools):
    from retrievers.elasticsearch.node.launcher import ElasticsearchNode

    node = ElasticsearchNode(node_name="test-node")
    try:
        yield node.start()
    finally:
        node.cleanup()


@pytest.fixture(scope="session")
def nq_corpus(data_dir) -> tuple[list[Document], list[tuple[str, str]]]:
    """The NQ-open-oracle passages and 50 of its questions spread over the file: (question, gold id)."""
    from benchmarks.datasets import nq_oracle_gold

    docs = load_documents(data_dir / "nq_open_oracle" / "corpus.jsonl.gz")
    questions = nq_oracle_gold(data_dir, docs)
    step = len(questions) // N_QUESTIONS
    return docs, questions[::step][:N_QUESTIONS]


@pytest.fixture(scope="session")
def nq_index(es_node, nq_corpus) -> ElasticsearchRetriever:
    docs, _ = nq_corpus
    es = ElasticsearchRetriever(es_node.url, "nq-open-oracle")
    assert es.index_documents(docs, progress=False) == len(docs)
    return es


@pytest.mark.slow
def test_bm25_agrees_with_in_process_bm25(nq_index, nq_corpus):
    docs, questions = nq_corpus
    bm25 = build_retriever("bm25", docs)
    overlaps, es_hits, bm_hits = [], 0, 0
    for question, gold in questions:
        es_top = [p.id for p in nq_index.retrieve(question, 10)]
        bm_top = [p.id for p in bm25.retrieve(question, 10)]
        assert len(es_top) == 10
        overlaps.append(len(set(es_top) & set(bm_top)) / 10)
        es_hits += gold in es_top[:5]
        bm_hits += gold in bm_top[:5]
    overlap = sum(overlaps) / len(overlaps)
    print(f"\n{len(questions)} NQ-open-oracle questions: top-10 overlap {overlap:.3f}; "
          f"recall@5 Elasticsearch {es_hits / len(questions):.3f} vs in-process BM25 {bm_hits / len(questions):.3f}")
    assert overlap >= 0.8
    assert es_hits / len(questions) >= 0.8  # docs/design.md, "Lucene BM25 recall on NQ-open-oracle": recall@5 0.931
    assert abs(es_hits - bm_hits) <= 0.1 * len(questions)


@pytest.mark.slow
def test_passages_carry_the_documents(nq_index, nq_corpus):
    docs, _ = nq_corpus
    doc = docs[123]
    top = nq_index.retrieve(f"{doc.title} {doc.text[:80]}", 3)
    assert top[0].id == doc.id and top[0].text == doc.text and top[0].title == doc.title
    assert top[0].score >= top[1].score >= top[2].score > 0


@pytest.mark.slow
def test_reindexing_is_idempotent(nq_index, nq_corpus):
    docs, _ = nq_corpus
    before = nq_index.count()
    assert before == len(docs)
    nq_index.index_documents(docs, progress=False)
    assert nq_index.count() == before


@pytest.mark.slow
def test_dense_knn_and_hybrid(es_node, nq_corpus):
    """kNN over MiniLM vectors in a dense_vector field; hybrid fuses it with BM25 by RRF.

    The test node has no rank-rrf module (x-pack, not on Maven Central), so the server refuses the
    rrf retriever and the fusion runs client-side over the two server rankings."""
    docs = nq_corpus[0][:100]
    knn = ElasticsearchRetriever(es_node.url, "nq-vectors", mode="knn")
    assert knn.index_documents(docs, progress=False) == 100
    assert knn.has_vectors()
    target = docs[42]
    by_meaning = knn.retrieve(target.text, 5)
    assert by_meaning[0].id == target.id and by_meaning[0].score > by_meaning[1].score
    hybrid = ElasticsearchRetriever(es_node.url, "nq-vectors", mode="hybrid")
    fused = hybrid.retrieve(target.text, 5)
    assert fused[0].id == target.id
    assert fused[0].metadata["fusion"] == "client-rrf" and fused[0].metadata["rrf_ranks"] == {"bm25": 1, "knn": 1}
    with pytest.raises(ElasticsearchError, match="no embeddings"):
        ElasticsearchRetriever(es_node.url, "nq-open-oracle", mode="knn").retrieve("anything", 3)
    # adding documents with another embedding model's vectors is refused before anything is written
    other = ElasticsearchRetriever(es_node.url, "nq-vectors", mode="bm25", embedding_model="another-384-dim-model")
    with pytest.raises(ElasticsearchError, match="embedded with"):
        other.index_documents(nq_corpus[0][100:110], progress=False)
    assert knn.count() == 100


@pytest.mark.slow
def test_full_loop_answers_from_the_index(es_node, nq_index, capsys):
    """`arag ask --trigger always --retriever elasticsearch`: the passage comes from Elasticsearch and the answer from it."""
    from rag.cli import main

    rc = main(["ask", "how many countries are a part of opec", "--retriever", "elasticsearch", "--es-url", es_node.url,
               "--es-index", nq_index.index, "--trigger", "always", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["costs"]["retriever_calls"] >= 1
    assert out["sources"][0]["title"] == "OPEC"
    assert "14" in out["answer"]  # the NQ answer, in the retrieved passage


@pytest.mark.slow
def test_cli_index_build(es_node, tmp_path, capsys):
    from rag.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"c{i}", "title": t, "text": x}) + "\n" for i, (t, x) in enumerate(
        [("Oslo", "Oslo is the capital of Norway."), ("Lima", "Lima is the capital of Peru.")])))
    assert main(["index", "build", str(corpus), "--retriever", "elasticsearch", "--es-url", es_node.url, "--es-index", "cli-built"]) == 0
    es = ElasticsearchRetriever(es_node.url, "cli-built")
    assert es.count() == 2 and es.retrieve("capital of Peru", 1)[0].id == "c1"


@pytest.mark.slow
def test_two_node_cluster_survives_a_node_stopping(es_tools, nq_corpus, tmp_path):
    """2 shards with 1 replica on two nodes: after the data node stops, the replicas it did not hold
    are promoted and every query returns what it returned before."""
    from retrievers.elasticsearch.node.launcher import ElasticsearchNode

    docs, questions = nq_corpus
    first = ElasticsearchNode(tmp_path / "a", node_name="node-a", cluster_name="arag-pair", peers_expected=True)
    second = ElasticsearchNode(tmp_path / "b", node_name="node-b", seed=first)
    try:
        first.start()
        second.start()
        es = ElasticsearchRetriever(first.url, "replicated", shards=2, replicas=1)
        es.index_documents(docs[:500], progress=False)
        health = es.client.cluster.health(index="replicated", wait_for_status="green", timeout="60s")
        assert health["number_of_nodes"] == 2 and health["active_shards"] == 4
        queries = [q for q, _ in questions[:10]] + [docs[i].title for i in range(0, 500, 50)]
        before = [[p.id for p in es.retrieve(q, 5)] for q in queries]
        second.stop()
        health = es.client.cluster.health(index="replicated", wait_for_nodes="1", wait_for_status="yellow", timeout="60s")
        assert health["number_of_nodes"] == 1 and health["active_primary_shards"] == 2
        after = [[p.id for p in es.retrieve(q, 5)] for q in queries]
        assert after == before
        assert es.count() == 500
    finally:
        second.cleanup()
        first.cleanup()


# ---- bad input: one-line errors, exit 2, nothing written -------------------------------------------

def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("arag: error: ") and "\n" not in err
    return err


def test_unreachable_url(capsys):
    from rag.cli import main

    assert main(["index", "build", "--retriever", "elasticsearch", "--es-url", "http://127.0.0.1:9", "--es-index", "x",
                 str(_demo_path())]) == 2
    assert "cannot reach Elasticsearch at http://127.0.0.1:9" in _one_line_error(capsys)
    with pytest.raises(ElasticsearchUnreachable):
        ElasticsearchRetriever("http://127.0.0.1:9", "x").retrieve("q", 1)


@pytest.mark.slow
def test_missing_index(es_node, capsys):
    from rag.cli import main

    assert main(["ask", "who wrote hamlet", "--retriever", "elasticsearch", "--es-url", es_node.url, "--es-index", "no-such-index",
                 "--trigger", "always"]) == 2
    assert "has no index 'no-such-index'" in _one_line_error(capsys)
    es = ElasticsearchRetriever(es_node.url, "no-such-index")
    assert not es.exists()
    with pytest.raises(ElasticsearchIndexMissing):
        es.check_ready()


@pytest.mark.slow
def test_bad_documents_write_nothing(es_node, tmp_path, capsys):
    from rag.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": ')
    assert main(["index", "build", str(bad), "--retriever", "elasticsearch", "--es-url", es_node.url, "--es-index", "bad-corpus"]) == 2
    _one_line_error(capsys)
    long_id = [Document(id="x" * 600, text="too long an id")]
    with pytest.raises(ElasticsearchError, match="512-byte"):
        ElasticsearchRetriever(es_node.url, "bad-corpus").index_documents(long_id)
    assert not ElasticsearchRetriever(es_node.url, "bad-corpus").exists()
    with pytest.raises(ElasticsearchError, match="invalid Elasticsearch index name"):
        ElasticsearchRetriever(es_node.url, "Bad Name")


def test_secrets_never_shown(monkeypatch):
    monkeypatch.setenv("ARAG_ES_API_KEY", "sekrit-api-key")
    es = ElasticsearchRetriever.from_env("http://127.0.0.1:9", "x")
    assert "sekrit" not in repr(es) and "sekrit" not in repr(es.conn)
    with pytest.raises(ElasticsearchUnreachable) as info:
        es.retrieve("q", 1)
    assert "sekrit" not in str(info.value)
    with pytest.raises(ElasticsearchUnreachable) as info:
        ElasticsearchRetriever("http://user:pa55word@127.0.0.1:9", "x").retrieve("q", 1)
    assert "pa55word" not in str(info.value) and "user@" not in str(info.value)
    monkeypatch.delenv("ARAG_ES_API_KEY")
    monkeypatch.setenv("ARAG_ES_USER", "elastic")
    with pytest.raises(ElasticsearchError, match="ARAG_ES_PASSWORD"):
        ElasticsearchRetriever.from_env("http://127.0.0.1:9", "x")


def _demo_path():
    from corpora.demo import DEMO_CORPUS

    return DEMO_CORPUS


@pytest.mark.slow
def test_bench_own_questions_over_elasticsearch(es_node, tiny_hub_env, tmp_path):
    """`arag bench --questions FILE --retriever elasticsearch --corpus PATH`: the files are indexed into
    Elasticsearch, then every question retrieves from it (the tiny hub-cache model keeps this fast)."""
    import subprocess
    import sys

    from conftest import TINY_HUB_ID

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"c{i}", "title": t, "text": x}) + "\n" for i, (t, x) in enumerate(
        [("Oslo", "Oslo is the capital of Norway."), ("Lima", "Lima is the capital of Peru.")])))
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "a", "question": "capital of Peru", "golden_answers": ["Lima"]}\n'
                  '{"id": "b", "question": "capital of Norway", "golden_answers": ["Oslo"]}\n')
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "rag.cli", "bench", "--questions", str(qa), "--retriever", "elasticsearch",
                        "--es-url", es_node.url, "--es-index", "own-qa", "--corpus", str(corpus), "--model", TINY_HUB_ID,
                        "--policies", "never,always", "--k", "1", "--out", str(out)],
                       capture_output=True, text=True, env=tiny_hub_env, timeout=900)
    assert r.returncode == 0, r.stderr
    records = {json.loads(x)["id"]: json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()}
    assert records["a"]["rag"]["passage_ids"] == ["c1"] and records["b"]["rag"]["passage_ids"] == ["c0"]
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["retriever"] == "elasticsearch" and config["sources"] == ["es-index:own-qa", str(corpus.resolve())]
    assert ElasticsearchRetriever(es_node.url, "own-qa").count() == 2
