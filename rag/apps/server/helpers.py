"""What every route needs besides its own logic: the API key, the body within its limit, the model
check, and work on the model worker that stops when the client leaves. Plain functions of the
request and the app's state (`rag.apps.server.app.create_app` sets it), so the routes stay short."""
from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import Response

from rag.apps.server.errors import APIError
from rag.apps.server.requests import Limits
from rag.apps.server.service import ChatService
from rag.models.http_capabilities import ARAG_OWNER as OWNER


def service_of(request: Request) -> ChatService:
    return request.app.state.service


def check_key(request: Request) -> None:
    """Require ``Authorization: Bearer KEY`` when the app has an API key."""
    api_key: str | None = request.app.state.api_key
    if api_key is None:
        return
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), api_key.encode()):
        raise APIError(401, "invalid or missing API key (send Authorization: Bearer KEY)", code="invalid_api_key")


def check_model(service: ChatService, name: str) -> None:
    if name not in service.model_ids():
        raise APIError(404, f"the model {name!r} does not exist; this server serves "
                            f"{', '.join(service.model_ids())}", "model", "model_not_found")


async def read_json(request: Request) -> Any:
    """The JSON body, refused past ``Limits.max_body_bytes`` while it is read (a lying
    Content-Length cannot make the server buffer more)."""
    limits: Limits = request.app.state.limits
    limit = limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body too large: {declared} > {limit} bytes", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"request body too large: > {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"malformed JSON body: {exc}", code="invalid_json") from None
    except RecursionError:
        raise APIError(400, "malformed JSON body: nested too deeply", code="invalid_json") from None


async def on_worker(request: Request, fn: Callable[[threading.Event], Any]) -> Any:
    """``fn(gone)`` on the model worker; a client that disconnects meanwhile sets ``gone``, which
    stops the work at the model's next token (or before it starts, if it is still queued)."""
    gone = threading.Event()
    future = asyncio.wrap_future(service_of(request).executor.submit(fn, gone))
    while True:
        done, _ = await asyncio.wait({future}, timeout=0.25)
        if done:
            return future.result()
        if await request.is_disconnected():
            gone.set()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody reads it
            return Response(status_code=499)  # nginx's "client closed request": no one receives it


def model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(time.time()), "owned_by": OWNER}


def meta(prefix: str, model: str) -> dict[str, Any]:
    """The id, creation time and model of a response."""
    return {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model}
