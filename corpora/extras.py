"""Optional dependencies (the extras of pyproject.toml) and the one-line error when one is missing.

A core install (``pip install adaptive-rag``) answers with BM25 and the LM-only triggers; the rest
come with extras. Code that needs an extra imports it through `require`, so a missing one reads
``arag: error: arag serve needs the server extra: pip install 'adaptive-rag[server]'`` (the CLI turns
`MissingExtra` into one line on stderr and exit 2), not a ModuleNotFoundError traceback deep in a
command. It lives in the lowest layer so that corpora, retrievers, triggers, rag and benchmarks can
all use it.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Sequence

# extra → the modules whose absence means that extra is not installed (pyproject.toml lists the packages)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "dense": ("faiss", "sentence_transformers"),
    "server": ("fastapi", "uvicorn"),
    "openai": ("openai",),
    "elasticsearch": ("elasticsearch",),
    "quco": ("infini_gram",),
    "llamaindex": ("llama_index.core",),
    "plots": ("matplotlib",),
    "learn": ("sklearn",),
}


class MissingExtra(Exception):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the {extra} extra: {install_hint(extra)}")
        self.what, self.extra = what, extra


def install_hint(extra: str) -> str:
    return f"pip install 'adaptive-rag[{extra}]'"


def _missing(exc: ImportError, module: str) -> bool:
    """Whether ``exc`` says ``module`` itself (or its top-level package) is absent, rather than
    something inside an installed package being broken (that traceback is worth seeing)."""
    name = getattr(exc, "name", None)
    return isinstance(exc, ModuleNotFoundError) and name is not None and (
        module == name or module.startswith(name + ".") or name.split(".")[0] == module.split(".")[0])


def require(extra: str, what: str, modules: Sequence[str] | None = None) -> ModuleType:
    """Import ``modules`` (default: all of ``extra``'s) and return the last; `MissingExtra` naming
    ``what`` (a command or feature, e.g. "arag serve") if one is not installed."""
    names = tuple(modules) if modules is not None else EXTRA_MODULES[extra]
    module: ModuleType | None = None
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if _missing(exc, name):
                raise MissingExtra(what, extra) from None
            raise
    assert module is not None
    return module


def available(module: str) -> bool:
    """Whether ``module`` imports (for features that are skipped, not refused, without their extra)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if _missing(exc, module):
            return False
        raise
    return True
