"""Prompt templates. The template matters as much as the trigger (docs/design.md, "Prompt templates"): with the same BM25
passages SmolLM2 answered under the "using the passages" wording and rambled under a "Context:"
wording. Change them only with a measurement on a dev slice (benchmarks)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rag.models.lm import Prompt
from retrievers.base import Passage


@dataclass(frozen=True)
class PromptTemplates:
    closed_book: str = "Answer the question in a few words.\n\nQuestion: {question}\nAnswer:"
    with_passages: str = "Answer the question using the passages.\n\n{passages}\n\nQuestion: {question}\nAnswer:"
    passage: str = "{title}: {text}"
    max_passage_words: int = 150

    def format_passages(self, passages: Sequence[Passage]) -> str:
        out = []
        for p in passages:
            words = p.text.split()
            text = " ".join(words[: self.max_passage_words]) + (" …" if len(words) > self.max_passage_words else "")
            out.append(self.passage.format(title=p.title or p.id, text=text))
        return "\n\n".join(out)

    def build(self, question: str, passages: Sequence[Passage] = (), prefix: str = "") -> Prompt:
        if passages:
            content = self.with_passages.format(passages=self.format_passages(passages), question=question)
        else:
            content = self.closed_book.format(question=question)
        return Prompt.user(content, prefix=prefix)
