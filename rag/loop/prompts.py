"""Prompt templates. The template matters as much as the trigger (docs/design.md, "Prompt templates"): with the same BM25
passages SmolLM2 answered under the "using the passages" wording and rambled under a "Context:"
wording. Change them only with a measurement on a dev slice (benchmarks)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from rag.models.lm import Prompt
from retrievers.base import Passage


@dataclass(frozen=True)
class PromptTemplates:
    closed_book: str = "Answer the question in a few words.\n\nQuestion: {question}\nAnswer:"
    with_passages: str = "Answer the question using the passages.\n\n{passages}\n\nQuestion: {question}\nAnswer:"
    passage: str = "{title}: {text}"
    max_passage_words: int = 150
    stops: tuple[str, ...] = ()  # stop strings the template needs (a base model's next "Question:")

    @classmethod
    def for_model(cls, lm: Any) -> "PromptTemplates":
        """The chat templates for an instruction-tuned model; `BASE_MODEL` for a model without a chat template
        (``lm.chat`` False), which continues text instead of answering a user turn."""
        return cls() if getattr(lm, "chat", True) else BASE_MODEL

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


# A base model (no chat template, e.g. Gemma-3-270M) completes text: it is shown three answered questions
# and stops at the next "Question:" it would write. With the chat wording it wrote "Question: … Answer:"
# again; with one example it often copied that example's answer. Chosen on six demo questions
# (docs/models.md), none of them among the examples.
FEW_SHOT = ("Question: who wrote romeo and juliet\nAnswer: William Shakespeare\n\n"
            "Question: what is the capital of japan\nAnswer: Tokyo\n\n"
            "Question: how many legs does a spider have\nAnswer: eight\n\n")
BASE_MODEL = PromptTemplates(
    closed_book=FEW_SHOT + "Question: {question}\nAnswer:",
    with_passages="{passages}\n\n" + FEW_SHOT + "Question: {question}\nAnswer:",
    stops=("\nQuestion:",),
)
