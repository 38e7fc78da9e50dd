"""Where the project caches what it derives (converted models, corpus indexes): one rule for all."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``ARAG_CACHE_DIR`` (``~`` expanded), default ``~/.cache/adaptive-rag``."""
    return Path(os.environ.get("ARAG_CACHE_DIR", Path.home() / ".cache" / "adaptive-rag")).expanduser()
