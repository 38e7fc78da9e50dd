"""`arag chat`: a terminal conversation over a corpus with adaptive retrieval.

The session keeps the turns; each new question goes through the loop with the earlier turns as
history and a retrieval query condensed from the conversation (rag/apps/conversation.py). Accepted
answer text is printed as the loop produces it (rag/loop/adaptive.py `on_text`); after each answer one line
says whether retrieval fired, the trigger score and the sources.
"""
from __future__ import annotations

import math
import sys
from typing import Callable, TextIO

from rag.apps.conversation import conversation_turn
from rag.errors import USER_ERRORS
from rag.loop.trace import Answer
from rag.pipeline import Pipeline

HELP = """commands:
  /sources        the passages behind the last answer (title, id, a snippet)
  /reset          forget the conversation
  /trigger NAME   switch the retrieval trigger (token-confidence, always, never, semantic-entropy, quco, a+b)
  /help           this text
  Ctrl-D or /quit to leave"""


class ChatSession:
    """A conversation: (role, content) turns plus the last answer, over one pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.messages: list[tuple[str, str]] = []
        self.last: Answer | None = None

    def ask(self, text: str, on_text: Callable[[str], None] | None = None) -> Answer:
        turn = conversation_turn(self.messages + [("user", text)])
        answer = self.pipeline.loop.answer(turn.question, history=turn.history,
                                           retrieval_query=turn.retrieval_query, on_text=on_text)
        self.messages += [("user", turn.question), ("assistant", answer.text)]
        self.last = answer
        return answer

    def reset(self) -> None:
        self.messages.clear()
        self.last = None

    def set_trigger(self, name: str) -> str:
        self.pipeline.trigger = self.pipeline.make_trigger(name)
        return getattr(self.pipeline.trigger, "name", name)


def retrieval_line(answer: Answer) -> str:
    """One line: did retrieval fire, with which scores, and which sources."""
    scores = [s.signal.score for s in answer.steps if s.signal is not None]
    shown = ", ".join(f"{x:.3g}" if math.isfinite(x) else str(x) for x in scores) or "-"
    if answer.retrieved:
        what = f"fired ({answer.trigger} score {shown})"
    elif answer.nothing_relevant:
        what = (f"retrieved; nothing relevant ({answer.trigger} score {shown})"
                + (" · abstained" if answer.abstained else " · answered closed-book"))
    elif answer.fired:
        what = f"fired, nothing retrieved ({answer.trigger} score {shown})"
    else:
        what = f"not needed ({answer.trigger} score {shown})"
    src = "; ".join(f"{p.title or p.id} ({p.id})" for p in answer.sources)
    return f"[retrieval: {what}" + (f" · sources: {src}" if src else "") + "]"


def sources_text(answer: Answer | None) -> str:
    if answer is None:
        return "no answer yet"
    if not answer.sources:
        return "the last answer used no sources (closed-book)"
    lines = []
    for i, p in enumerate(answer.sources, 1):
        snippet = " ".join(p.text.split()[:24])
        lines.append(f"[{i}] {p.title or p.id} ({p.id}): {snippet}…")
    return "\n".join(lines)


def run_chat(session: ChatSession, out: TextIO = sys.stdout, read: Callable[[str], str] = input) -> int:
    """The read-answer loop. Returns 0 on Ctrl-D or /quit."""
    prompt = "you> " if sys.stdin.isatty() else ""

    def say(text: str = "", end: str = "\n") -> None:
        out.write(text + end)
        out.flush()

    say(f"arag chat · trigger {getattr(session.pipeline.trigger, 'name', '?')} · /help for commands, Ctrl-D to quit")
    while True:
        try:
            line = read(prompt).strip()
        except EOFError:
            say("\nbye")
            return 0
        except KeyboardInterrupt:
            say("\nbye")
            return 0
        if not line:
            continue
        if line.startswith("/"):
            cmd, _, arg = line.partition(" ")
            if cmd in ("/quit", "/exit"):
                say("bye")
                return 0
            if cmd == "/help":
                say(HELP)
            elif cmd == "/reset":
                session.reset()
                say("[conversation cleared]")
            elif cmd == "/sources":
                say(sources_text(session.last))
            elif cmd == "/trigger":
                if not arg.strip():
                    say(f"[trigger: {getattr(session.pipeline.trigger, 'name', '?')}]")
                    continue
                try:
                    say(f"[trigger: {session.set_trigger(arg.strip())}]")
                except USER_ERRORS as exc:
                    say(f"error: {exc}")
            else:
                say(f"unknown command {cmd}; /help lists them")
            continue
        say("arag> ", end="")
        try:
            answer = session.ask(line, on_text=lambda s: say(s, end=""))
        except KeyboardInterrupt:
            say("\n[interrupted]")
            continue
        except USER_ERRORS as exc:
            say(f"\nerror: {exc}")
            continue
        say()
        say(retrieval_line(answer))
