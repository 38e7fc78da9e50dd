"""The FastAPI app: routes, the API key, the body limit, and the model check."""
from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from rag.openai_backend import OWNER
from rag.pipeline import Pipeline
from rag.server.errors import APIError, install_error_handlers
from rag.server.requests import ChatRequest, Limits, parse
from rag.server.responses import ChatShape
from rag.server.service import ChatService
from rag.server.sse import stream
from rag.trace import json_text


def create_app(pipeline: Pipeline, api_key: str | None = None, limits: Limits | None = None,
               model_name: str | None = None) -> FastAPI:
    """The FastAPI app. ``api_key``: require ``Authorization: Bearer KEY`` on /v1 routes."""
    limits = limits or Limits()
    service = ChatService(pipeline, model_name)
    app = FastAPI(title="adaptive-rag", description="OpenAI-compatible chat completions with adaptive retrieval")
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

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": service.model_name}

    @app.get("/v1/models")
    async def models(request: Request):
        check_key(request)
        now = int(time.time())
        return {"object": "list", "data": [{"id": m, "object": "model", "created": now, "owned_by": OWNER}
                                           for m in service.model_ids()]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_key(request)
        req: ChatRequest = parse(ChatRequest, await read_json(request), limits)
        check_model(req.model)
        job = req.to_job()
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": req.model}
        shape = ChatShape(meta, service.text_of, job.logprobs, job.top_logprobs)
        if req.stream:
            events = stream(service.executor, lambda on_piece: service.run(job, on_piece), shape, job.n,
                            req.stream_options.include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        result = await asyncio.wrap_future(service.executor.submit(service.run, job))
        return Response(json_text(shape.body(result)), media_type="application/json")

    return app
