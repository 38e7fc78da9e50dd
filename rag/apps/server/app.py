"""The FastAPI app: routes, the API key, the body limit, and the model check."""
from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from rag.models.openai_backend import OWNER
from rag.pipeline import Pipeline
from rag.apps.server.errors import APIError, install_error_handlers
from rag.apps.server.requests import ChatRequest, CompletionRequest, Job, Limits, Sampling, parse
from rag.apps.server.responses import ChatShape, CompletionShape, Result, Shape
from rag.apps.server.service import ChatService
from rag.apps.server.sse import stream
from rag.loop.trace import json_text


def create_app(pipeline: Pipeline, api_key: str | None = None, limits: Limits | None = None,
               model_name: str | None = None, batch_window_ms: float = 5.0, max_batch: int = 16) -> FastAPI:
    """The FastAPI app. ``api_key``: require ``Authorization: Bearer KEY`` on /v1 routes; ``batch_window_ms``
    and ``max_batch``: the micro-batching of concurrent requests (`rag.apps.server.batcher`; ``max_batch=1`` turns it off)."""
    limits = limits or Limits()
    service = ChatService(pipeline, model_name, batch_window_ms, max_batch)
    app = FastAPI(title="adaptive-rag", description="OpenAI-compatible completions with adaptive retrieval")
    app.state.service = service
    install_error_handlers(app)

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise APIError(401, "invalid or missing API key (send Authorization: Bearer KEY)", code="invalid_api_key")

    def check_model(name: str) -> None:
        if name not in service.model_ids():
            raise APIError(404, f"the model {name!r} does not exist; this server serves "
                                f"{', '.join(service.model_ids())}", "model", "model_not_found")

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise APIError(413, f"request body too large: {declared} > {limits.max_body_bytes} bytes",
                           code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise APIError(413, f"request body too large: > {limits.max_body_bytes} bytes", code="request_too_large")
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
        future = asyncio.wrap_future(service.executor.submit(fn, gone))
        while True:
            done, _ = await asyncio.wait({future}, timeout=0.25)
            if done:
                return future.result()
            if await request.is_disconnected():
                gone.set()
                future.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody reads it
                return Response(status_code=499)  # nginx's "client closed request": no one receives it

    async def answer(request: Request, req: Sampling, jobs: list[Job], shape: Shape) -> Response:
        """Stream or answer ``jobs``: the model, a per-request trigger and the prompts' length are
        checked first, so that a mistake in them is a 4xx reply, never an error event after a 200."""
        check_model(req.model)
        left = await on_worker(request, lambda gone: service.prepare(jobs))  # None, or the reply to a client that left
        if left is not None:
            return left
        if req.stream:
            events = stream(service.executor, lambda on_piece, gone: service.run_all(jobs, on_piece, gone), shape,
                            len(jobs) * req.n, req.stream_options.include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        result = await on_worker(request, lambda gone: service.run_all(jobs, None, gone))
        if not isinstance(result, Result):
            return result
        return Response(json_text(shape.body(result)), media_type="application/json")

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": int(time.time()), "owned_by": OWNER}

    def meta(prefix: str, model: str) -> dict[str, Any]:
        return {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": service.model_name}

    @app.get("/v1/models")
    async def models(request: Request):
        check_key(request)
        return {"object": "list", "data": [model_card(m) for m in service.model_ids()]}

    @app.get("/v1/models/{name:path}")
    async def model(request: Request, name: str):
        check_key(request)
        check_model(name)
        return model_card(name)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_key(request)
        req: ChatRequest = parse(ChatRequest, await read_json(request), limits)
        job = req.to_job()
        shape = ChatShape(meta("chatcmpl", req.model), service.text_of, job.logprobs, job.top_logprobs)
        return await answer(request, req, [job], shape)

    @app.post("/v1/completions")
    async def completions(request: Request):
        check_key(request)
        req: CompletionRequest = parse(CompletionRequest, await read_json(request), limits)
        shape = CompletionShape(meta("cmpl", req.model), service.text_of, req.logprobs, req.prompt, req.n, req.echo)
        return await answer(request, req, req.to_jobs(), shape)

    return app
