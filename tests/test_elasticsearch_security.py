"""Credentials and TLS against a real secured Elasticsearch node: x-pack security, HTTPS, a file-realm user.

The node (retrievers/elasticsearch/node/launcher.py with `NodeSecurity`) is built from the repository's Maven projects like
the open test node; these tests check what a user meets when pointing `arag` at a secured cluster:
credentials and the CA file from the environment or flags work, and a wrong password, a bad API key,
no credentials or an untrusted certificate each end in one line, exit 2, nothing written, no secret shown.
"""
from __future__ import annotations

import secrets

import pytest

from rag.cli import main
from retrievers.elasticsearch.connection import ElasticsearchAuthError
from retrievers.elasticsearch.retriever import ElasticsearchRetriever

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]

USER = "arag-test"
PASSWORD = secrets.token_urlsafe(12)
ENV = ("ARAG_ES_URL", "ARAG_ES_INDEX", "ARAG_ES_API_KEY", "ARAG_ES_USER", "ARAG_ES_PASSWORD", "ARAG_ES_CA_FILE")


@pytest.fixture(scope="module")
def secure_node(es_tools, tmp_path_factory):
    from retrievers.elasticsearch.node.launcher import ElasticsearchNode
    from retrievers.elasticsearch.node.security import NodeSecurity

    node = ElasticsearchNode(tmp_path_factory.mktemp("secure-es"), node_name="secure-node",
                             security=NodeSecurity({USER: PASSWORD}, tls=True))
    try:
        yield node.start()
    finally:
        node.cleanup()


@pytest.fixture
def env(monkeypatch):
    """A clean Elasticsearch environment for each test; returns monkeypatch to set what the test needs."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """200 demo passages as a JSONL file, and one of their titles to search for."""
    import json

    from corpora.demo import demo_documents

    docs = demo_documents()[:200]
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    return path, docs


def _admin(node):
    """The official client as the superuser, trusting the node's CA: for setting up and checking."""
    from elasticsearch import Elasticsearch

    return Elasticsearch(node.url, basic_auth=(USER, PASSWORD), ca_certs=str(node.ca_file))


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("arag: error: ") and "\n" not in err, err
    assert PASSWORD not in captured.out + err
    return err


@pytest.fixture(scope="module")
def secure_index(secure_node, small_corpus) -> str:
    """The small corpus indexed by the superuser (credentials as arguments); returns the index name."""
    _, docs = small_corpus
    es = ElasticsearchRetriever.from_env(secure_node.url, "secure-demo", basic_auth=(USER, PASSWORD),
                                         ca_file=str(secure_node.ca_file))
    assert es.index_documents(docs, progress=False) == len(docs)
    return es.index


def test_cli_indexes_with_user_and_ca_from_environment(secure_node, small_corpus, env, capsys):
    path, docs = small_corpus
    env.setenv("ARAG_ES_USER", USER)
    env.setenv("ARAG_ES_PASSWORD", PASSWORD)
    env.setenv("ARAG_ES_CA_FILE", str(secure_node.ca_file))
    assert main(["index", "build", str(path), "--retriever", "elasticsearch", "--es-url", secure_node.url,
                 "--es-index", "secure-cli"]) == 0
    assert f"indexed {len(docs)} documents" in capsys.readouterr().out
    assert _admin(secure_node).count(index="secure-cli")["count"] == len(docs)


def test_api_key_from_environment_searches(secure_node, secure_index, small_corpus, env):
    _, docs = small_corpus
    key = _admin(secure_node).security.create_api_key(name="arag-search")["encoded"]
    env.setenv("ARAG_ES_API_KEY", key)
    es = ElasticsearchRetriever.from_env(secure_node.url, secure_index, ca_file=str(secure_node.ca_file))
    target = docs[17]
    assert es.retrieve(f"{target.title} {target.text[:120]}", 3)[0].id == target.id
    assert key not in repr(es)


def test_key_without_read_privilege_is_refused(secure_node, secure_index, env, capsys):
    """403, not 401: the key is valid but may only read another index."""
    role = {"search-other": {"cluster": ["monitor"], "indices": [{"names": ["other"], "privileges": ["read"]}]}}
    env.setenv("ARAG_ES_API_KEY", _admin(secure_node).security.create_api_key(name="other-only", role_descriptors=role)["encoded"])
    env.setenv("ARAG_ES_CA_FILE", str(secure_node.ca_file))
    assert main(["ask", "who wrote hamlet", "--trigger", "always", "--retriever", "elasticsearch", "--es-url", secure_node.url,
                 "--es-index", secure_index]) == 2
    assert f"not allowed to do an index check on index '{secure_index}' (403: no details in the reply)" in _one_line_error(capsys)


@pytest.mark.parametrize("credentials, expected", [
    ({"ARAG_ES_USER": USER, "ARAG_ES_PASSWORD": "not-the-password"}, f"rejected the password of user '{USER}' (401)"),
    ({"ARAG_ES_API_KEY": "bm90OmFrZXk="}, "rejected the API key (401)"),
    ({}, "needs credentials (401)"),
], ids=["wrong-password", "bad-api-key", "none"])
def test_refused_credentials_write_nothing(secure_node, small_corpus, env, capsys, credentials, expected):
    path, _ = small_corpus
    for name, value in credentials.items():
        env.setenv(name, value)
    args = ["--retriever", "elasticsearch", "--es-url", secure_node.url, "--es-index", "never-written",
            "--es-ca-file", str(secure_node.ca_file)]
    assert main(["index", "build", str(path), *args]) == 2
    err = _one_line_error(capsys)
    assert expected in err and "not-the-password" not in err
    assert not _admin(secure_node).indices.exists(index="never-written")
    # asking fails the same way, before any model is loaded
    assert main(["ask", "who wrote hamlet", "--trigger", "always", *args]) == 2
    assert expected in _one_line_error(capsys)
    with pytest.raises(ElasticsearchAuthError):
        ElasticsearchRetriever.from_env(secure_node.url, "never-written", ca_file=str(secure_node.ca_file)).retrieve("q", 1)


def test_untrusted_certificate_and_missing_ca_file(secure_node, small_corpus, env, capsys, tmp_path):
    path, _ = small_corpus
    env.setenv("ARAG_ES_USER", USER)
    env.setenv("ARAG_ES_PASSWORD", PASSWORD)
    args = ["index", "build", str(path), "--retriever", "elasticsearch", "--es-url", secure_node.url, "--es-index", "never-written"]
    assert main(args) == 2  # the node's CA is not in the system trust store
    assert "TLS failure talking to Elasticsearch" in _one_line_error(capsys)
    assert main([*args, "--es-ca-file", str(tmp_path / "missing.pem")]) == 2
    assert f"CA file {tmp_path / 'missing.pem'} not found" in _one_line_error(capsys)
    assert main([*args[:-4], "--es-url", secure_node.url.replace("https:", "http:"), "--es-index", "never-written"]) == 2
    assert "cannot reach Elasticsearch" in _one_line_error(capsys)  # plain HTTP to the TLS port
    assert not _admin(secure_node).indices.exists(index="never-written")
