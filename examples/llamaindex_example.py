"""Adaptive retrieval for LlamaIndex users, both ways round.

    .venv/bin/python examples/llamaindex_example.py

1. A LlamaIndex BM25 retriever (llama-index-retrievers-bm25) runs inside arag's adaptive loop.
2. The adaptive loop is a LlamaIndex query engine: `engine.query(...)` returns a `Response` whose
   `source_nodes` are the passages it retrieved (none when the model was confident) and whose
   `metadata["arag"]` is the full trace (trigger scores, queries, costs).
3. arag's own BM25 retriever is a LlamaIndex `BaseRetriever`, usable in any LlamaIndex pipeline.
"""
from __future__ import annotations

from llama_index.core.schema import TextNode
from llama_index.retrievers.bm25 import BM25Retriever

from corpora.demo import demo_documents
from rag import AdaptiveRAG, LoopConfig, load_model
from rag.apps.llamaindex import AdaptiveQueryEngine, AsLlamaIndexRetriever, FromLlamaIndexRetriever
from retrievers import build_retriever
from triggers import TokenConfidence


def main() -> None:
    docs = demo_documents()
    nodes = [TextNode(id_=d.id, text=d.text, metadata={"title": d.title}) for d in docs]
    llama_bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=3)

    loop = AdaptiveRAG(load_model("default"), FromLlamaIndexRetriever(llama_bm25), TokenConfidence(),
                       config=LoopConfig(k=3, max_steps=2))
    engine = AdaptiveQueryEngine(loop)
    response = engine.query("how many countries are a part of opec")
    trace = response.metadata["arag"]
    print("answer:   ", response)
    print("retrieved:", trace["retrieved"], "| scores:", [round(s["score"], 3) for s in trace["steps"]])
    for n in response.source_nodes:
        print(f"  source: {n.node.metadata['title']} ({n.node.node_id}) score {n.score:.2f}")

    ours = AsLlamaIndexRetriever(build_retriever("bm25", docs, progress=False), similarity_top_k=3)
    print("arag BM25 via LlamaIndex:", [n.node.node_id for n in ours.retrieve("capital of australia")])


if __name__ == "__main__":
    main()
