"""LlamaIndex adapters with the real `llama-index-core` and `llama-index-retrievers-bm25`."""
from __future__ import annotations

import pytest
from llama_index.core.base.response.schema import Response
from llama_index.core.schema import TextNode
from llama_index.retrievers.bm25 import BM25Retriever as LlamaBM25

from rag.apps.llamaindex import AdaptiveQueryEngine, AsLlamaIndexRetriever, FromLlamaIndexRetriever
from rag.loop import AdaptiveRAG, LoopConfig
from retrievers import RetrieverError, build_retriever
from triggers import Always

QUERIES = ["who wrote the novel 1984", "how many countries are in opec", "capital of australia"]


@pytest.fixture(scope="module")
def ours(demo_docs):
    return build_retriever("bm25", demo_docs, progress=False)


@pytest.fixture(scope="module")
def theirs(demo_docs):
    nodes = [TextNode(id_=d.id, text=d.text, metadata={"title": d.title}) for d in demo_docs]
    return FromLlamaIndexRetriever(LlamaBM25.from_defaults(nodes=nodes, similarity_top_k=5))


def test_our_bm25_as_llamaindex_retriever_returns_the_same_ids(ours):
    wrapped = AsLlamaIndexRetriever(ours, similarity_top_k=5)
    for q in QUERIES:
        direct = ours.retrieve(q, 5)
        nodes = wrapped.retrieve(q)
        assert [n.node.node_id for n in nodes] == [p.id for p in direct]
        assert [n.score for n in nodes] == pytest.approx([p.score for p in direct])
        assert nodes[0].node.metadata["title"] == direct[0].title


def test_llamaindex_bm25_as_our_retriever(theirs, demo_docs):
    titles = {d.id: d.title for d in demo_docs}
    got = theirs.retrieve("how many countries are in opec", 3)
    assert len(got) == 3 and all(p.title == titles[p.id] for p in got)
    assert got[0].score >= got[-1].score
    with pytest.raises(RetrieverError):
        theirs.retrieve("q", 0)


@pytest.mark.slow
def test_llamaindex_retriever_inside_the_loop_and_query_engine(default_lm, theirs):
    loop = AdaptiveRAG(default_lm, theirs, Always(), config=LoopConfig(k=2, max_steps=1, step_tokens=16))
    q = "how many countries are in opec"
    response = AdaptiveQueryEngine(loop).query(q)
    assert isinstance(response, Response)
    trace = response.metadata["arag"]
    expected_ids = [p.id for p in theirs.retrieve(trace["steps"][0]["query"], 2)]
    assert trace["retrieved"] and trace["steps"][0]["passage_ids"] == expected_ids
    assert [n.node.node_id for n in response.source_nodes] == expected_ids
    assert str(response) == trace["answer"] and trace["costs"]["retriever_calls"] == 1
