"""Multi-turn conversations on top of the single-question loop.

A follow-up ("When was he born?") is unanswerable and unretrievable on its own. Two things carry
the conversation into the loop without changing its single-question path:
- the prompt: the earlier turns go before the question as chat messages (``history``);
- the retrieval query: the question condensed with the last turns (their words, newest kept), so a
  lexical or dense retriever sees the entity the follow-up refers to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rag.errors import UsageError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ConversationTurn:
    """What the loop needs for the newest user message of a conversation."""

    question: str  # the newest user message, as the prompt's question
    history: tuple[tuple[str, str], ...]  # earlier (role, content) messages, system first
    retrieval_query: str  # the question condensed with the last turns


def condense_query(question: str, earlier: Sequence[tuple[str, str]], turns: int = 2, max_words: int = 48) -> str:
    """The words of the last ``turns`` user/assistant exchanges (at most ``max_words``, newest kept)
    followed by the question."""
    recent = [c for r, c in earlier if r in ("user", "assistant")][-2 * turns:]
    words = " ".join(recent).split()[-max_words:] if max_words > 0 else []
    return " ".join(words + [question.strip()]).strip()


def conversation_turn(messages: Sequence[tuple[str, str]], max_history: int = 6, turns: int = 2,
                      max_words: int = 48) -> ConversationTurn:
    """Split (role, content) messages into the newest user question, the history kept for the
    prompt (system messages plus the last ``max_history`` others) and the condensed query."""
    if not messages:
        raise UsageError("no messages")
    for i, (role, _) in enumerate(messages):
        if role not in ROLES:
            raise UsageError(f"message {i}: unknown role {role!r}; expected one of {', '.join(ROLES)}")
    role, question = messages[-1]
    if role != "user" or not question.strip():
        raise UsageError("the last message must be a non-empty user message")
    earlier = list(messages[:-1])
    system = [m for m in earlier if m[0] == "system"]
    others = [m for m in earlier if m[0] != "system" and m[1].strip()]
    kept = others[-max_history:] if max_history > 0 else []
    while kept and kept[0][0] != "user":  # a history opens with a question, as chat templates expect
        kept = kept[1:]
    return ConversationTurn(question=question.strip(), history=tuple(system + kept),
                            retrieval_query=condense_query(question, others, turns, max_words))
