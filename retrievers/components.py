"""Opening the retriever a command asked for: a saved index, a corpus path, or the demo corpus.

Dense indexes over a corpus path are cached under the user cache dir, keyed by the corpus
fingerprint, so `arag ask --corpus X --retriever faiss` embeds X once, not on every question.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from corpora.cache import cache_dir
from corpora.documents import Document, fingerprint, load_documents
from retrievers.base import Retriever, RetrieverError
from retrievers.kinds import RETRIEVER_KINDS, check_kind, require_kind


def corpus_documents(corpus: Sequence[str] | None) -> list[Document]:
    """Documents of the given paths, or the shipped demo corpus when none are given."""
    if corpus:
        return load_documents(list(corpus))
    from corpora.demo import demo_documents

    return demo_documents()


def open_retriever(kind: str | None = None, index: str | None = None, corpus: Sequence[str] | None = None,
                   progress: bool = True, es_url: str | None = None, es_index: str | None = None,
                   es_mode: str = "bm25", es_ca_file: str | None = None) -> Retriever:
    """``kind`` None: bm25, or with ``index`` the index's own kind (a different ``kind`` is refused,
    not silently ignored)."""
    from retrievers.build import build_index, build_retriever, load_index

    if index:
        if kind == "elasticsearch":
            raise RetrieverError("--index names a saved index folder; Elasticsearch reads --es-index NAME instead")
        if kind is not None:
            from retrievers.store import read_manifest

            built = read_manifest(Path(index)).kind
            if built != kind:
                raise RetrieverError(f"{index} is a {built} index, not {kind}; drop --retriever (the index decides its kind)")
        return load_index(index)
    kind = kind or "bm25"
    if kind not in RETRIEVER_KINDS:  # a plugin kind, built over the corpus
        from retrievers.specs import plugin_retriever

        return plugin_retriever(kind).build(corpus_documents(corpus))
    require_kind(check_kind(kind))  # a missing extra: one line, before the model loads
    if kind == "elasticsearch":
        from retrievers.elasticsearch.retriever import ElasticsearchRetriever

        retriever = ElasticsearchRetriever.from_env(url=es_url, index=es_index, mode=es_mode, ca_file=es_ca_file)
        if corpus:
            retriever.index_documents(corpus_documents(corpus), progress=progress)
        else:
            retriever.check_ready()  # unreachable / 401 / missing index: one line, before the model loads
        return retriever
    docs = corpus_documents(corpus)
    if kind == "bm25":
        return build_retriever("bm25", docs, progress=progress)
    cached = cache_dir() / "indexes" / f"{kind}-{fingerprint(docs)}"
    if (cached / "manifest.json").exists():
        return load_index(cached)
    return build_index(kind, docs, cached, progress=progress)
