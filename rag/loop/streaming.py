"""Streaming text that is guaranteed to add up to the final answer.

Two problems make naive streaming wrong: a stop string or a step end is only recognised after the
token that completes it was produced (so text that a later token could still cut must be held back),
and the answer is whitespace-stripped at the end (so leading and trailing whitespace must not be
sent early).
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

from rag.models.steps import StepEnd, first_stop, held_by_stops

Sink = Callable[[str], None]


def accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` (optional LM features: ``on_text``, ``step_end``, ``top_logprobs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def can_stream(lm) -> bool:
    """Whether the model reports its text as it grows (``on_text``), so steps can stream token by token."""
    return accepts(lm.generate, "on_text")


class AnswerText:
    """Forwards pieces so that everything sent equals ``"".join(fed).strip()``: leading whitespace is
    dropped and trailing whitespace waits until more text follows (it is dropped at the end)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.started = False
        self.pending = ""

    def feed(self, piece: str) -> None:
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return
            self.started = True
        text = self.pending + piece
        body = text.rstrip()
        self.pending = text[len(body):]
        if body:
            self.sink(body)


class StepStream:
    """Token-level text of one generation whose text will be accepted.

    The model calls ``on_text`` after every token that did not end the generation, with the text so
    far; only text that nothing can still cut is forwarded. Held back: an incomplete UTF-8 character
    ("\ufffd"), any tail that could still grow into a stop string, and — for a step that ends at a
    step boundary — the text from the last whitespace on (a step end always falls on whitespace).
    ``finish`` forwards the rest of the final text.
    """

    def __init__(self, feed: Sink, stops: Sequence[str] = (), step_end: StepEnd | None = None) -> None:
        self.feed = feed
        self.stops = [s for s in stops if s]
        self.step_end = step_end
        self.sent = ""

    def on_text(self, index: int, text: str) -> None:
        if index != 0:
            return
        safe = len(text) - held_by_stops(text, self.stops)
        if self.step_end is not None:
            safe = min(safe, self.step_end.safe(text))
        bad = text.find("\ufffd", len(self.sent))
        if bad != -1:
            safe = min(safe, bad)
        if safe > len(self.sent) and text.startswith(self.sent):
            self.feed(text[len(self.sent):safe])
            self.sent = text[:safe]

    def finish(self, final_text: str) -> None:
        """Send what remains of ``final_text``; what was sent is always a prefix of it (see above)."""
        if not final_text.startswith(self.sent):
            raise RuntimeError(f"streamed text {self.sent!r} is not a prefix of the step {final_text!r}")
        self.feed(final_text[len(self.sent):])


class StopHold:
    """Answer text across steps, held back so that nothing from the first of the caller's stop
    strings on is ever sent, even when a stop string spans two steps: the last
    ``len(longest stop) - 1`` characters wait until more text (or ``finish``) arrives."""

    def __init__(self, feed: Sink, stops: Sequence[str]) -> None:
        self.out = feed
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""
        self.sent = 0

    def feed(self, piece: str) -> None:
        self.text += piece
        hit = first_stop(self.text, self.stops)
        safe = hit[0] if hit else len(self.text) - self.hold
        if safe > self.sent:
            self.out(self.text[self.sent:safe])
            self.sent = safe

    def finish(self, final_text: str) -> None:
        """Send what remains of the answer's (cut) text; what was sent is always a prefix of it."""
        if not final_text.startswith(self.text[:self.sent]):
            raise RuntimeError(f"streamed text {self.text[:self.sent]!r} is not a prefix of {final_text!r}")
        if len(final_text) > self.sent:
            self.out(final_text[self.sent:])
