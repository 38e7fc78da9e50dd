"""adaptive-rag: decide when a language model should retrieve.

The public surface is short::

    from rag import AdaptiveRAG, LoopConfig, load_model

    loop = AdaptiveRAG(load_model("default"), retriever, trigger, config=LoopConfig(k=3))
    answer = loop.answer("Who wrote Dracula?")

The names load on first use (module ``__getattr__``), so ``import rag`` and `arag --help` stay
instant: the model stack (torch, transformers) loads only when a model does. The rooms below hold
the rest: `rag.models` (language models), `rag.loop` (the step-wise loop), `rag.apps` (chat,
server, LlamaIndex), `rag.cli` (the command line).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.loop import AdaptiveRAG, LoopConfig
    from rag.loop.trace import Answer
    from rag.pipeline import load_language_model as load_model

__all__ = ["AdaptiveRAG", "Answer", "LoopConfig", "load_model"]


def __getattr__(name: str) -> Any:
    if name in ("AdaptiveRAG", "LoopConfig"):
        from rag import loop

        return getattr(loop, name)
    if name == "Answer":
        from rag.loop.trace import Answer

        return Answer
    if name == "load_model":
        from rag.pipeline import load_language_model

        return load_language_model
    raise AttributeError(f"module 'rag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
