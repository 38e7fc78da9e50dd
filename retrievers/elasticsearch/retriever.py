"""Elasticsearch as a retriever: BM25 (english analyzer, title boosted), dense kNN, and their RRF fusion.

For corpora that outgrow one machine (DRAGIN, QuCo-RAG and AdaRAGUE run their BM25 on it). One
index holds, per document: ``id`` (also the ``_id``, so re-indexing overwrites instead of adding),
``title`` and ``text`` analysed by the ``english`` analyzer (Porter stemmer, the 33 Lucene
stopwords: the analysis of the Lucene figures in docs/design.md,
"Lucene BM25 recall on NQ-open-oracle"), the document's metadata (stored, not
indexed) and, for the dense modes, an ``embedding`` (``dense_vector``, cosine) of
all-MiniLM-L6-v2 over the same "title\\ntext" the FAISS index embeds.

Modes: ``bm25`` — ``combined_fields`` (BM25F: title and text scored as one field, the title's
term frequencies counted ``title_boost`` times) — the closest Elasticsearch query to the in-process
BM25 over "title\ntext", and the best of the multi-field queries measured (see DEFAULT_TITLE_BOOST); ``knn`` — approximate kNN on
``embedding``; ``hybrid`` — both fused by reciprocal-rank fusion. The fusion runs on the server
(the ``rrf`` retriever, Elasticsearch 8.14+ with the rank-rrf module and a licence that allows it)
and falls back to fusing the two server-side rankings here with the same formula when the server
lacks it (`metadata["fusion"]` says which ran).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from tqdm.auto import tqdm

from corpora.documents import Document
from retrievers.base import Passage, check_k
from retrievers.bm25 import DEFAULT_B, DEFAULT_K1
from retrievers.embeddings import DEFAULT_EMBEDDING_MODEL
from retrievers.elasticsearch.connection import (
    DEFAULT_INDEX, Connection, ElasticsearchError, check_index_name, index_missing, translate,
)
from retrievers.hybrid import DEFAULT_POOL, DEFAULT_RRF_K  # the in-process hybrid's, measured there
from retrievers.inputs import check_documents, check_query, indexed_text, progress_enabled

MODES = ("bm25", "knn", "hybrid")
QUERY_TYPES = ("combined_fields", "cross_fields", "most_fields", "best_fields")  # the first is BM25F; the others are multi_match types
# 300 NQ-open-oracle questions (benchmarks/perf_elasticsearch.py --sweep), top-10 overlap with the in-process BM25,
# recall@1/5/10: combined_fields title^1 0.930, .783/.937/.963; ^1.5 0.910, .803/.940/.970; ^2 0.885, .803/.940/.967;
# ^3 0.846, .820/.950/.970; multi_match cross_fields ^1.5 0.873, .797/.943/.970; most_fields ^1.5 0.469, .747/.917/.940;
# in-process BM25 .770/.933/.960. ^2 keeps the title clearly boosted at no recall cost.
DEFAULT_TITLE_BOOST = 2.0
BULK_CHUNK = 500
_MAX_ID_BYTES = 512  # Elasticsearch's limit on _id


class ElasticsearchRetriever:
    """`Retriever` over one Elasticsearch index. The client connects lazily; nothing is written until `index_documents`."""

    def __init__(
        self,
        url: str,
        index: str = DEFAULT_INDEX,
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        *,
        mode: str = "bm25",
        title_boost: float = DEFAULT_TITLE_BOOST,
        query_type: str = "combined_fields",
        embedding_model: str = DEFAULT_EMBEDDING_MODEL,
        rrf_k: int = DEFAULT_RRF_K,
        pool: int = DEFAULT_POOL,
        num_candidates: int = 100,
        shards: int = 1,
        replicas: int = 0,
        timeout: float = 30.0,
        connection: Connection | None = None,
    ):
        if mode not in MODES:
            raise ElasticsearchError(f"unknown Elasticsearch retrieval mode {mode!r} (use one of {', '.join(MODES)})")
        if query_type not in QUERY_TYPES:
            raise ElasticsearchError(f"unknown Elasticsearch query type {query_type!r} (use one of {', '.join(QUERY_TYPES)})")
        if shards < 1 or replicas < 0 or rrf_k < 0 or pool < 1 or num_candidates < 1 or title_boost <= 0:
            raise ElasticsearchError("Elasticsearch options out of range: need shards >= 1, replicas >= 0, rrf_k >= 0, pool >= 1, num_candidates >= 1, title_boost > 0")
        self.conn = connection or Connection(url, api_key=api_key, basic_auth=basic_auth, ca_file=ca_file, timeout=timeout)
        self.index = check_index_name(index)
        self.mode = mode
        self.title_boost = title_boost
        self.query_type = query_type
        self.embedding_model = embedding_model
        self.rrf_k = rrf_k
        self.pool = pool
        self.num_candidates = num_candidates
        self.shards = shards
        self.replicas = replicas
        self._client = None
        self._server_rrf: bool | None = None  # unknown until the first hybrid query
        self._vectors_ok = False

    @classmethod
    def from_env(cls, url: str | None = None, index: str | None = None, **options: Any) -> "ElasticsearchRetriever":
        """URL and credentials from arguments, else ARAG_ES_URL / ARAG_ES_API_KEY / ARAG_ES_USER + ARAG_ES_PASSWORD /
        ARAG_ES_CA_FILE; the index from ``index``, else ARAG_ES_INDEX, else "arag"."""
        import os

        auth = {k: options.pop(k) for k in ("api_key", "basic_auth", "ca_file", "timeout") if k in options}
        conn = Connection.from_env(url, **auth)
        return cls(conn.url, index or os.environ.get("ARAG_ES_INDEX") or DEFAULT_INDEX, connection=conn, **options)

    def __repr__(self) -> str:
        return f"ElasticsearchRetriever(url={self.conn.safe_url!r}, index={self.index!r}, mode={self.mode!r})"

    @property
    def client(self):
        if self._client is None:
            self._client = self.conn.client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> "ElasticsearchRetriever":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, doing: str, fn, *args, **kwargs):
        """Run a client call; any client error becomes a one-line ElasticsearchError naming what was attempted."""
        import elasticsearch
        from elastic_transport import TransportError

        try:
            return fn(*args, **kwargs)
        except (elasticsearch.ApiError, TransportError, elasticsearch.UnsupportedProductError) as exc:
            raise translate(exc, self.conn, self.index, doing) from None

    # ---- connection and index state -------------------------------------------------------------

    def server_version(self) -> str:
        """The server's version; also proves the URL and credentials work."""
        return self._call("a version check", self.client.info)["version"]["number"]

    def exists(self) -> bool:
        return bool(self._call("an index check", self.client.indices.exists, index=self.index))

    def check_ready(self) -> None:
        """Fail now, in one line, if the server is unreachable, refuses the credentials or lacks the index."""
        self.server_version()
        if not self.exists():
            raise index_missing(self.conn, self.index)

    def count(self) -> int:
        """Documents in the index (searchable ones: the index is refreshed after each `index_documents`)."""
        return int(self._call("a count", self.client.count, index=self.index)["count"])

    def _mapping_info(self) -> dict:
        mapping = dict(self._call("a mapping check", self.client.indices.get_mapping, index=self.index))
        return next(iter(mapping.values()))["mappings"]

    def has_vectors(self) -> bool:
        return "embedding" in self._mapping_info().get("properties", {})

    def _check_vectors(self) -> None:
        """Once per retriever: kNN on an index without vectors would silently return nothing, and vectors
        of another model would return nonsense; both are errors instead."""
        if self._vectors_ok:
            return
        info = self._mapping_info()
        if "embedding" not in info.get("properties", {}):
            raise ElasticsearchError(f"index {self.index!r} has no embeddings for {self.mode} retrieval: index the corpus with mode {self.mode}")
        built_with = info.get("_meta", {}).get("embedding_model")
        if built_with and built_with != self.embedding_model:
            raise ElasticsearchError(f"index {self.index!r} was embedded with {built_with!r}, not {self.embedding_model!r}")
        self._vectors_ok = True

    def delete_index(self) -> None:
        self._call("index deletion", self.client.indices.delete, index=self.index, ignore_unavailable=True)

    def _mapping(self, dims: int | None) -> dict:
        props: dict[str, Any] = {
            "id": {"type": "keyword"},
            "title": {"type": "text", "analyzer": "english"},
            "text": {"type": "text", "analyzer": "english"},
            "metadata": {"type": "object", "enabled": False},
        }
        meta: dict[str, Any] = {"created_by": "adaptive-rag"}
        if dims:
            props["embedding"] = {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}
            meta["embedding_model"] = self.embedding_model
        return {"dynamic": "strict", "_meta": meta, "properties": props}

    def _settings(self) -> dict:
        # k1 and b spelled out: the in-process BM25's (also Elasticsearch's defaults), comparable by construction.
        return {"number_of_shards": self.shards, "number_of_replicas": self.replicas,
                "similarity": {"default": {"type": "BM25", "k1": DEFAULT_K1, "b": DEFAULT_B}}}

    # ---- indexing -------------------------------------------------------------------------------

    def index_documents(self, docs: Sequence[Document], progress: bool | None = True, *, chunk_size: int = BULK_CHUNK) -> int:
        """Bulk-index ``docs`` under their own ids (re-indexing overwrites); returns how many were indexed.

        Everything that can be checked before writing is checked first (documents, ids, server,
        credentials, the existing index's vectors), so bad input writes nothing. Vectors are
        computed when the mode needs them or the index already has them, so every document of a
        vector index has one.
        """
        docs = check_documents(docs)
        for d in docs:
            if len(d.id.encode()) > _MAX_ID_BYTES:
                raise ElasticsearchError(f"document id {d.id[:40]!r}... is longer than Elasticsearch's {_MAX_ID_BYTES}-byte limit")
        self.server_version()
        existing = self.exists()
        with_vectors = self.mode != "bm25" or (existing and self.has_vectors())
        if existing and with_vectors:
            self._check_vectors()  # vectors there, and of this retriever's embedding model
        encoder = None
        if with_vectors:
            from retrievers.embeddings import load_encoder

            encoder = load_encoder(self.embedding_model)
        if not existing:
            self._call("index creation", self.client.indices.create, index=self.index, settings=self._settings(),
                       mappings=self._mapping(encoder.dim if encoder else None))
        indexed = self._bulk(docs, encoder, progress_enabled(progress), chunk_size)
        self._call("a refresh", self.client.indices.refresh, index=self.index)
        return indexed

    def _actions(self, docs: list[Document], encoder, chunk_size: int) -> Iterator[dict]:
        for start in range(0, len(docs), chunk_size):
            batch = docs[start : start + chunk_size]
            vectors = encoder.encode([indexed_text(d) for d in batch]) if encoder else None
            for i, d in enumerate(batch):
                source: dict[str, Any] = {"id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata}
                if vectors is not None:
                    source["embedding"] = vectors[i].tolist()
                yield {"_op_type": "index", "_index": self.index, "_id": d.id, "_source": source}

    def _bulk(self, docs: list[Document], encoder, progress: bool, chunk_size: int) -> int:
        import elasticsearch
        from elastic_transport import TransportError
        from elasticsearch.helpers import streaming_bulk

        ok_count, failed = 0, []
        stream = streaming_bulk(self.client, self._actions(docs, encoder, chunk_size), chunk_size=chunk_size,
                                raise_on_error=False, max_retries=2)
        with tqdm(total=len(docs), desc=f"index {self.index}", unit="doc", disable=not progress) as bar:
            try:
                for ok, item in stream:
                    bar.update(1)
                    ok_count += ok
                    if not ok:
                        failed.append(item)
            except (elasticsearch.ApiError, TransportError) as exc:
                raise translate(exc, self.conn, self.index, "bulk indexing") from None
        if failed:
            info = next(iter(failed[0].values()))
            err = info.get("error", {})
            reason = f"{err.get('type', 'error')}: {err.get('reason', '')}" if isinstance(err, dict) else str(err)
            raise ElasticsearchError(
                f"bulk indexing into {self.index!r}: {len(failed)} of {len(docs)} documents failed, first {info.get('_id')!r} ({reason})"
            )
        return ok_count

    # ---- retrieval ------------------------------------------------------------------------------

    def _bm25_query(self, query: str) -> dict:
        fields = [f"title^{self.title_boost:g}", "text"]
        if self.query_type == "combined_fields":
            return {"combined_fields": {"query": query, "fields": fields}}
        return {"multi_match": {"query": query, "fields": fields, "type": self.query_type}}

    def _knn(self, query: str, k: int) -> dict:
        from retrievers.embeddings import load_encoder

        vector = load_encoder(self.embedding_model).encode([query])[0].tolist()
        return {"field": "embedding", "query_vector": vector, "k": k, "num_candidates": max(self.num_candidates, k)}

    def _search(self, k: int, **body: Any) -> list[Passage]:
        resp = self._call("search", self.client.search, index=self.index, size=k, source_excludes=["embedding"],
                          track_total_hits=False, **body)
        return [_to_passage(hit) for hit in resp["hits"]["hits"]]

    def retrieve(self, query: str, k: int = 5) -> list[Passage]:
        """The k best passages, best first. Scores: BM25 sums (bm25), cosine-derived (knn), RRF sums (hybrid)."""
        check_k(k)
        check_query(query)
        if self.mode == "bm25":
            return self._search(k, query=self._bm25_query(query))
        self._check_vectors()
        knn = self._knn(query, max(k, self.pool) if self.mode == "hybrid" else k)
        if self.mode == "knn":
            return self._search(k, knn=knn)
        return self._hybrid(query, knn, k)

    def _hybrid(self, query: str, knn: dict, k: int) -> list[Passage]:
        import elasticsearch
        from elastic_transport import TransportError

        depth = max(k, self.pool)
        if self._server_rrf is not False:
            rrf = {"rrf": {"retrievers": [{"standard": {"query": self._bm25_query(query)}}, {"knn": knn}],
                           "rank_window_size": depth, "rank_constant": self.rrf_k}}
            try:
                resp = self.client.search(index=self.index, size=k, source_excludes=["embedding"], retriever=rrf)
            except (elasticsearch.BadRequestError, elasticsearch.AuthorizationException) as exc:
                # "unknown retriever [rrf]" (no rank-rrf module, or a server before 8.14) or a licence without RRF:
                # fuse here instead. Any other refusal is a real error.
                if self._server_rrf or "rrf" not in str(exc).lower():
                    raise translate(exc, self.conn, self.index, "hybrid search") from None
                self._server_rrf = False
            except (elasticsearch.ApiError, TransportError) as exc:  # what _call translates; bugs keep their traceback
                raise translate(exc, self.conn, self.index, "hybrid search") from None
            else:
                self._server_rrf = True
                return [_with(_to_passage(h), fusion="elasticsearch-rrf") for h in resp["hits"]["hits"]]
        from retrievers.hybrid import reciprocal_rank_fusion

        ranked = {"bm25": self._search(depth, query=self._bm25_query(query)), "knn": self._search(depth, knn=knn)}
        return [_with(p, fusion="client-rrf") for p in reciprocal_rank_fusion(ranked, self.rrf_k)[:k]]


def _to_passage(hit: dict) -> Passage:
    src = hit["_source"]
    return Passage(id=src.get("id", hit["_id"]), text=src.get("text", ""), title=src.get("title", ""),
                   score=float(hit.get("_score") or 0.0), metadata=dict(src.get("metadata") or {}))


def _with(p: Passage, **extra: Any) -> Passage:
    return Passage(id=p.id, text=p.text, title=p.title, score=p.score, metadata={**p.metadata, **extra})
