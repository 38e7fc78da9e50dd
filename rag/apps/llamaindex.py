"""Adapters between this project and LlamaIndex (``llama-index-core``), both ways.

- `AsLlamaIndexRetriever`: any project retriever as a LlamaIndex ``BaseRetriever``.
- `FromLlamaIndexRetriever`: any LlamaIndex retriever (``BM25Retriever``, a ``VectorStoreIndex``
  retriever, ...) as a project `Retriever`, so it can run inside the adaptive loop.
- `AdaptiveQueryEngine`: a LlamaIndex query engine whose ``query()`` runs the adaptive loop and
  returns a ``Response`` with the passages as ``source_nodes`` and the trace in ``metadata["arag"]``.

LlamaIndex is imported here only: `retrievers/` must not depend on `rag/`, and users who never
touch LlamaIndex never import it.
"""
from __future__ import annotations

import asyncio
from typing import Any

from corpora.extras import require

require("llamaindex", "rag.apps.llamaindex (the LlamaIndex integration)")

from llama_index.core.base.base_query_engine import BaseQueryEngine  # noqa: E402
from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.base.response.schema import Response  # noqa: E402
from llama_index.core.callbacks import CallbackManager  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402

from rag.loop import AdaptiveRAG  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from retrievers.base import Passage, Retriever, RetrieverError, check_k  # noqa: E402


def passage_to_node(p: Passage) -> NodeWithScore:
    """A passage as a scored LlamaIndex text node (the title goes into the node's metadata)."""
    return NodeWithScore(node=TextNode(id_=p.id, text=p.text, metadata={"title": p.title, **p.metadata}), score=p.score)


def node_to_passage(n: NodeWithScore) -> Passage:
    meta: dict[str, Any] = dict(n.node.metadata or {})
    title = str(meta.pop("title", "") or "")
    return Passage(id=n.node.node_id, text=n.node.get_content(), title=title,
                   score=float(n.score) if n.score is not None else 0.0, metadata=meta)


class AsLlamaIndexRetriever(BaseRetriever):
    """A project retriever seen by LlamaIndex; ``k`` is LlamaIndex's ``similarity_top_k``."""

    def __init__(self, retriever: Retriever, similarity_top_k: int = 5,
                 callback_manager: CallbackManager | None = None) -> None:
        self.retriever = retriever
        self.similarity_top_k = check_k(similarity_top_k)
        super().__init__(callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [passage_to_node(p) for p in self.retriever.retrieve(query_bundle.query_str, self.similarity_top_k)]


class FromLlamaIndexRetriever:
    """A LlamaIndex retriever as a project `Retriever`.

    LlamaIndex retrievers fix their result count when built (``similarity_top_k``); ``retrieve(q, k)``
    keeps the first k of those, so build the wrapped retriever with ``similarity_top_k >= k``.
    """

    def __init__(self, retriever: BaseRetriever, name: str | None = None) -> None:
        if not isinstance(retriever, BaseRetriever):
            raise RetrieverError(f"expected a LlamaIndex BaseRetriever, got {type(retriever).__name__}")
        self.retriever = retriever
        self.name = name or f"llamaindex:{type(retriever).__name__}"

    def retrieve(self, query: str, k: int = 5) -> list[Passage]:
        check_k(k)
        return [node_to_passage(n) for n in self.retriever.retrieve(query)[:k]]


class AdaptiveQueryEngine(BaseQueryEngine):
    """``engine.query("...")`` → ``Response(response, source_nodes, metadata={"arag": trace})``."""

    def __init__(self, rag: AdaptiveRAG | Pipeline, callback_manager: CallbackManager | None = None) -> None:
        self.rag = rag.loop if isinstance(rag, Pipeline) else rag
        super().__init__(callback_manager=callback_manager)

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}

    def _query(self, query_bundle: QueryBundle) -> Response:
        answer = self.rag.answer(query_bundle.query_str)
        return Response(response=answer.text, source_nodes=[passage_to_node(p) for p in answer.sources],
                        metadata={"arag": answer.to_dict()})

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        return await asyncio.to_thread(self._query, query_bundle)
