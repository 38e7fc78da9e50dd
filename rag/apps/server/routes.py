"""The routes: health, the model list, and the two completion endpoints. Each handler reads the
service, the key and the limits from the app's state (`rag.apps.server.app.create_app`), so the
routes are module-level functions rather than closures over one app."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from rag.apps.server.helpers import check_key, check_model, meta, model_card, on_worker, read_json, service_of
from rag.apps.server.requests import ChatRequest, CompletionRequest, Job, Sampling, parse
from rag.apps.server.responses import ChatShape, CompletionShape, Result, Shape
from rag.apps.server.sse import stream
from rag.loop.trace import json_text

router = APIRouter()


async def answer(request: Request, req: Sampling, jobs: list[Job], shape: Shape) -> Response:
    """Stream or answer ``jobs``: the model, a per-request trigger and the prompts' length are
    checked first, so that a mistake in them is a 4xx reply, never an error event after a 200."""
    service = service_of(request)
    check_model(service, req.model)
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


@router.get("/health")
async def health(request: Request):
    return {"status": "ok", "model": service_of(request).model_name}


@router.get("/v1/models")
async def models(request: Request):
    check_key(request)
    return {"object": "list", "data": [model_card(m) for m in service_of(request).model_ids()]}


@router.get("/v1/models/{name:path}")
async def model(request: Request, name: str):
    check_key(request)
    check_model(service_of(request), name)
    return model_card(name)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request):
    check_key(request)
    req: ChatRequest = parse(ChatRequest, await read_json(request), request.app.state.limits)
    job = req.to_job()
    shape = ChatShape(meta("chatcmpl", req.model), service_of(request).text_of, job.logprobs, job.top_logprobs)
    return await answer(request, req, [job], shape)


@router.post("/v1/completions")
async def completions(request: Request):
    check_key(request)
    req: CompletionRequest = parse(CompletionRequest, await read_json(request), request.app.state.limits)
    shape = CompletionShape(meta("cmpl", req.model), service_of(request).text_of, req.logprobs, req.prompt, req.n, req.echo)
    return await answer(request, req, req.to_jobs(), shape)
