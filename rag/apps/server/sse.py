"""Server-sent events: the model runs on the service's worker, pieces come back through an asyncio
queue, and a client that goes away stops the generation at its next piece."""
from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Callable

from rag.apps.server.errors import APIError, server_error
from rag.apps.server.responses import Result, Shape
from rag.apps.server.service import ClientGone, OnPiece
from rag.loop.trace import json_text


def event(obj: Any) -> str:
    return "data: " + json_text(obj) + "\n\n"


async def stream(executor, work: Callable[[OnPiece, threading.Event], Result], shape: Shape, n: int,
                 include_usage: bool) -> AsyncIterator[str]:
    """The events of one streamed request: ``work(on_piece, gone)`` runs on ``executor``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    gone = threading.Event()

    def on_piece(index: int, text: str) -> None:
        if gone.is_set():
            raise ClientGone()
        if text:
            loop.call_soon_threadsafe(queue.put_nowait, ("piece", index, text))

    def run() -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, ("done", work(on_piece, gone)))
        except ClientGone:
            pass
        except APIError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc.body()))
        except Exception as exc:  # noqa: BLE001 - the stream must end with an error event, not hang
            loop.call_soon_threadsafe(queue.put_nowait, ("error", server_error(exc).body()))

    executor.submit(run)
    try:
        for chunk in shape.opening(n):
            yield event(chunk)
        while True:
            item = await queue.get()
            if item[0] == "piece":
                yield event(shape.piece(item[1], item[2]))
            elif item[0] == "error":
                yield event(item[1])
                break
            else:
                for chunk in shape.closing(item[1]):
                    yield event(chunk)
                if include_usage:
                    yield event(shape.usage_chunk(item[1]))
                break
        yield "data: [DONE]\n\n"
    finally:
        gone.set()
