"""Is a ``--model`` / ``--tokenizer`` argument a local path or a Hugging Face hub id?

Both look alike (``org/name`` vs ``models/name``), so: an existing path is a path; otherwise a
string that is a valid hub repo id (huggingface_hub's own rule) and does not start like a path
(``/``, ``.``, ``~``) is a hub id, loaded from the local hub cache when offline; anything else is a
path that does not exist. Lives in the lowest layer because corpus-statistics indexes take a
tokenizer argument too.
"""
from __future__ import annotations

import os
from pathlib import Path


def is_hub_id(spec: str | os.PathLike) -> bool:
    """True for ``gpt2`` or ``meta-llama/Llama-3.1-8B-Instruct`` that is not an existing path."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = str(spec)
    if Path(text).expanduser().exists() or text.startswith(("/", ".", "~")) or text.endswith(".gguf"):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True
