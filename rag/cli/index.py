"""`arag index build CORPUS... --retriever KIND --out DIR`: build and save a retrieval index."""
from __future__ import annotations

import argparse

from rag.cli.common import add_elasticsearch_args, positive_int, show_progress
from retrievers.kinds import RETRIEVER_KINDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build retrieval indexes")
    isub = p.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    b = isub.add_parser("build", help="index a corpus for retrieval (written to a temporary folder, then renamed)")
    b.add_argument("corpus", nargs="+", help="JSONL(.gz) files or folders of .txt/.md")
    b.add_argument("--retriever", default="bm25", choices=RETRIEVER_KINDS)
    b.add_argument("--out", help="index folder to write (required except for elasticsearch)")
    b.add_argument("--backend", default=None, choices=("bm25s", "rank-bm25"), help="bm25/hybrid: BM25 implementation (default: bm25s)")
    b.add_argument("--index-type", default=None, choices=("flat", "hnsw"), help="faiss/hybrid: FAISS index type (default: flat)")
    b.add_argument("--chunk-words", type=positive_int, default=None, help="split documents into windows of this many words")
    b.add_argument("--chunk-overlap", type=int, default=None, help="words shared by consecutive windows (default: 20)")
    add_elasticsearch_args(b, mode_help="index MiniLM vectors too for knn/hybrid")
    b.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    from corpora.chunking import chunk_words
    from corpora.documents import load_documents
    from rag.errors import UsageError
    from retrievers.kinds import require_kind

    for flag, value, kinds in (("--backend", args.backend, ("bm25", "hybrid")), ("--index-type", args.index_type, ("faiss", "hybrid"))):
        if value is not None and args.retriever not in kinds:
            raise UsageError(f"{flag} applies to {' and '.join(kinds)} indexes, not to {args.retriever}")
    if args.retriever == "elasticsearch" and args.out:
        raise UsageError("--out is for folder indexes; an Elasticsearch index is named with --es-index")
    if args.retriever != "elasticsearch" and not args.out:
        raise UsageError("--out DIR is required for bm25, faiss and hybrid indexes")
    if args.chunk_overlap is not None and not args.chunk_words:
        raise UsageError("--chunk-overlap needs --chunk-words")
    require_kind(args.retriever)
    docs = load_documents(args.corpus)
    if args.chunk_words:
        docs = chunk_words(docs, size=args.chunk_words, overlap=20 if args.chunk_overlap is None else args.chunk_overlap)
    if args.retriever == "elasticsearch":
        from retrievers.elasticsearch.retriever import ElasticsearchRetriever

        es = ElasticsearchRetriever.from_env(url=args.es_url, index=args.es_index, mode=args.es_mode, ca_file=args.es_ca_file)
        es.index_documents(docs, progress=show_progress())
        print(f"indexed {len(docs)} documents into Elasticsearch index {es.index!r}")
        return 0
    from retrievers import build_index

    build_index(args.retriever, docs, args.out, backend=args.backend or "bm25s", index_type=args.index_type or "flat",
                progress=show_progress())
    print(f"wrote {args.retriever} index of {len(docs)} documents to {args.out}")
    return 0
