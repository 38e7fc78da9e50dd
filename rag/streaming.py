"""Streaming text that is guaranteed to add up to the final answer.

Two problems make naive streaming wrong: a stop string is only recognised after the token that
completes it was produced (so text just before a possible stop must be held back), and the answer
is whitespace-stripped at the end (so leading and trailing whitespace must not be sent early).
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

Sink = Callable[[str], None]


def accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes a keyword argument ``name`` (optional LM features: ``on_token``, ``top_logprobs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def token_decoder(lm) -> Callable[[list[int]], str] | None:
    """A decode function for token-level streaming, or None when the model cannot stream tokens."""
    tok = getattr(lm, "tokenizer", None)
    if tok is None or not accepts(lm.generate, "on_token"):
        return None
    return lambda ids: tok.decode(ids, skip_special_tokens=True)


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
    """Token-level text of one generation (sample 0) whose text will be accepted.

    ``on_token`` decodes the tokens so far and forwards only text that no stop string can still cut
    (the last ``len(longest stop) - 1`` characters wait) and no incomplete UTF-8 character; ``finish``
    forwards the rest of the final text.
    """

    def __init__(self, decode: Callable[[list[int]], str], stops: Sequence[str], feed: Sink) -> None:
        self.decode = decode
        self.hold = max((len(s) for s in stops if s), default=1) - 1
        self.feed = feed
        self.ids: list[int] = []
        self.sent = ""

    def on_token(self, index: int, token_id: int) -> None:
        if index != 0:
            return
        self.ids.append(token_id)
        text = self.decode(self.ids)
        safe = len(text) - self.hold
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
