"""Each retriever kind's declaration: where it searches and the settings it is built with, for
`arag retrievers` and the docs (the kinds' classes stay in `retrievers.kinds`, imported on use).

Plugins add kinds through entry points of the ``adaptive_rag.retrievers`` group whose object is a
`RetrieverSpec` with a ``build(documents)``; `--retriever NAME` then builds it over the corpus. One
that fails to load is one line naming it, and the built-ins keep working. The
defaults are the modules' own (`tests/test_declarations.py` checks that they agree).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Sequence

from corpora.settings import Setting
from retrievers.base import RetrieverError

GROUP = "adaptive_rag.retrievers"
WHERE = ("in-process index", "service")


@dataclass(frozen=True)
class RetrieverSpec:
    """``build(documents)``: a plugin's retriever over a corpus (the built-ins are built by `retrievers.build`)."""

    name: str
    where: str
    settings: tuple[Setting, ...] = ()
    help: str = ""
    extra: str | None = None
    build: Callable[[Sequence[Any]], Any] | None = None

    def __post_init__(self) -> None:
        if self.where not in WHERE:
            raise RetrieverError(f"retriever {self.name}: where must be one of {', '.join(WHERE)}, got {self.where!r}")


_BM25 = (Setting("k1", float, 1.2, "BM25 term-frequency saturation", range=(0.0, None)),
         Setting("b", float, 0.75, "BM25 length normalisation", range=(0.0, 1.0)))
_EMBEDDING = Setting("embedding_model", str, "sentence-transformers/all-MiniLM-L6-v2", "sentence-embedding model (a shipped folder)")
_FUSION = (Setting("rrf_k", int, 60, "reciprocal rank fusion's k", range=(0, None)),
           Setting("pool", int, 10, "candidates per member before fusion", range=(1, None)))

BUILTIN_SPECS: dict[str, RetrieverSpec] = {s.name: s for s in (
    RetrieverSpec("bm25", "in-process index", _BM25, "BM25 over stemmed words (bm25s)"),
    RetrieverSpec("faiss", "in-process index", (_EMBEDDING,), "dense: cosine over MiniLM embeddings (FAISS)", extra="dense"),
    RetrieverSpec("hybrid", "in-process index", (*_BM25, _EMBEDDING, *_FUSION), "BM25 and dense fused with RRF", extra="dense"),
    RetrieverSpec("elasticsearch", "service", (
        Setting("mode", str, "bm25", "BM25, kNN over MiniLM vectors, or both fused with RRF", choices=("bm25", "knn", "hybrid")),
        Setting("title_boost", float, 2.0, "weight of the title field in BM25 queries", range=(0.0, None)),
        Setting("num_candidates", int, 100, "kNN candidates per shard", range=(1, None)), *_FUSION,
    ), "an Elasticsearch index (--es-url, --es-index)", extra="elasticsearch"),
)}


def _load(ep: EntryPoint) -> RetrieverSpec:
    """The spec an entry point names; RetrieverError (one line naming it) when it is broken."""
    origin = f"retriever plugin {ep.name!r} ({ep.value})"
    if ep.name in BUILTIN_SPECS:
        raise RetrieverError(f"{origin}: clashes with the retriever {ep.name!r}; rename the entry point")
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin's import runs its code: any failure is the plugin's
        raise RetrieverError(f"{origin}: cannot import it ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, RetrieverSpec) or obj.build is None:
        raise RetrieverError(f"{origin}: {obj!r} is not a RetrieverSpec with a build function")
    return obj


def plugin_retriever(name: str) -> RetrieverSpec:
    """The plugin retriever kind ``name``; RetrieverError when it is unknown or broken."""
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return _load(ep)
    known = [*BUILTIN_SPECS, *(ep.name for ep in entry_points(group=GROUP) if ep.name not in BUILTIN_SPECS)]
    raise RetrieverError(f"unknown retriever kind {name!r} (use one of {', '.join(known)})")


def retriever_specs() -> tuple[dict[str, RetrieverSpec], list[str]]:
    """Every retriever kind's declaration (built-ins, then plugins) and one line per broken plugin."""
    specs, problems = dict(BUILTIN_SPECS), []
    for ep in entry_points(group=GROUP):
        try:
            specs.setdefault(ep.name, _load(ep))
        except RetrieverError as exc:
            problems.append(str(exc))
    return specs, problems
