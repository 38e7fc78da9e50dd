"""An OpenAI-compatible HTTP server over a `Pipeline`: `POST /v1/chat/completions` (plain and
server-sent-event streaming), `GET /v1/models`, `GET /health`.

Why it looks like this:
- One model, one worker thread. Every request's model work runs on a single-thread executor, so
  requests queue instead of interleaving: the model's KV cache and the per-answer cost counters
  (deltas of ``lm.usage``) stay per request. The event loop never blocks on the model.
- Two modes. By default a request is answered by the adaptive loop (the newest user message is the
  question, earlier turns are history, the retrieval query is condensed from the conversation).
  With ``"arag": {"retrieval": false}`` the server is a plain completion endpoint over the raw model
  for the exact messages — what `rag.openai_backend.OpenAICompatibleModel` needs so that triggers
  can read token log-probs over HTTP. A trailing assistant message with
  ``"continue_final_message": true`` (vLLM's field) is continued, not answered.
- Each response carries the retrieval trace in an extra ``arag`` field that OpenAI clients ignore.
- Errors are OpenAI-style JSON (``{"error": {"message", "type", "param", "code"}}``) with 4xx codes.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.conversation import ROLES, conversation_turn
from rag.errors import USER_ERRORS
from rag.lm import Generation, Prompt
from rag.loop import AdaptiveRAG
from rag.openai_backend import OWNER
from rag.pipeline import Pipeline
from rag.streaming import StepStream, accepts, can_stream
from rag.tokens import TokenBytes
from rag.trace import Answer, json_text

MAX_TOP_LOGPROBS = 20  # OpenAI's limit


class APIError(Exception):
    """An error the client caused (or a server failure), rendered as OpenAI-style JSON."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_000_000
    max_messages: int = 64
    max_tokens: int = 1024  # raw-mode cap on max_tokens
    max_n: int = 16


@dataclass
class ChatRequest:
    """A validated `/v1/chat/completions` body (only the fields this server acts on)."""

    model: str
    messages: list[tuple[str, str]]
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    continue_final: bool = False
    retrieval: bool = True
    trigger: str | None = None
    repetition_penalty: float | None = None  # vLLM's extra field; None = the server's setting
    no_repeat_ngram_size: int | None = None


# -- request parsing ------------------------------------------------------------------------------
def _content(value: Any, i: int) -> str:
    """A message's content: a string, or OpenAI content parts of type text (joined)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"messages[{i}].content: only text parts are supported", f"messages[{i}].content")
            parts.append(part["text"])
        return "".join(parts)
    if value is None:
        return ""
    raise APIError(400, f"messages[{i}].content must be a string or a list of text parts", f"messages[{i}].content")


def _number(body: dict, name: str, default, kind: type, lo: float, hi: float):
    value = body.get(name)
    if value is None:
        return default
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or float(value).is_integer())
    if not ok or not math.isfinite(value) or not lo <= value <= hi:
        what = "an integer" if kind is int else "a number"
        raise APIError(400, f"{name} must be {what} in [{lo}, {hi}], got {value!r}", name)
    return kind(value)


def parse_request(body: Any, limits: Limits) -> ChatRequest:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    raw = body.get("messages")
    if raw is None:
        raise APIError(400, "missing required parameter: 'messages'", "messages", "missing_required_parameter")
    if not isinstance(raw, list) or not raw:
        raise APIError(400, "'messages' must be a non-empty list", "messages")
    if len(raw) > limits.max_messages:
        raise APIError(400, f"too many messages: {len(raw)} > {limits.max_messages}", "messages", "too_many_messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise APIError(400, f"messages[{i}] must be an object", f"messages[{i}]")
        role = "system" if m.get("role") == "developer" else m.get("role")
        if role not in ROLES:
            raise APIError(400, f"messages[{i}].role: unsupported role {m.get('role')!r}; expected one of "
                                f"{', '.join(ROLES)}", f"messages[{i}].role")
        messages.append((role, _content(m.get("content"), i)))
    model = body.get("model", "default")
    if not isinstance(model, str):
        raise APIError(400, "model must be a string", "model")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 16 or not all(isinstance(s, str) for s in stop):
        raise APIError(400, "stop must be a string or a list of at most 16 strings", "stop")
    ext = body.get("arag") or {}
    if not isinstance(ext, dict):
        raise APIError(400, "arag must be an object", "arag")
    opts = body.get("stream_options") or {}
    req = ChatRequest(
        model=model, messages=messages, stream=bool(body.get("stream", False)),
        include_usage=bool(isinstance(opts, dict) and opts.get("include_usage")),
        n=_number(body, "n", 1, int, 1, limits.max_n),
        temperature=_number(body, "temperature", 0.0, float, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, float, 0.0, 1.0),
        max_tokens=_number(body, "max_completion_tokens", None, int, 1, limits.max_tokens)
        if body.get("max_tokens") is None else _number(body, "max_tokens", None, int, 1, limits.max_tokens),
        stop=[s for s in stop if s], seed=_number(body, "seed", None, int, -(2**63), 2**63 - 1),
        logprobs=bool(body.get("logprobs", False)),
        top_logprobs=_number(body, "top_logprobs", 0, int, 0, MAX_TOP_LOGPROBS),
        continue_final=bool(body.get("continue_final_message", False)),
        retrieval=bool(ext.get("retrieval", True)), trigger=ext.get("trigger"),
        repetition_penalty=_number(body, "repetition_penalty", None, float, 0.01, 10.0),
        no_repeat_ngram_size=_number(body, "no_repeat_ngram_size", None, int, 0, 64),
    )
    for name in ("frequency_penalty", "presence_penalty"):  # OpenAI's additive penalties: no transformers processor
        if _number(body, name, 0.0, float, -2.0, 2.0) != 0.0:
            raise APIError(400, f"{name} is not supported; use repetition_penalty or no_repeat_ngram_size", name)
    if req.top_logprobs and not req.logprobs:
        raise APIError(400, "top_logprobs needs logprobs: true", "top_logprobs")
    if req.trigger is not None and not isinstance(req.trigger, str):
        raise APIError(400, "arag.trigger must be a trigger name", "arag.trigger")
    if req.seed is not None and req.seed < 0:
        req.seed %= 2**63  # torch seeds are unsigned
    if req.retrieval:
        if req.n != 1:
            raise APIError(400, "n > 1 needs \"arag\": {\"retrieval\": false} (the adaptive loop gives one answer)", "n")
        if req.continue_final or messages[-1][0] != "user" or not messages[-1][1].strip():
            raise APIError(400, "the last message must be a non-empty user message", "messages")
    elif req.continue_final and messages[-1][0] != "assistant":
        raise APIError(400, "continue_final_message needs a final assistant message", "messages")
    return req


def _repetition(req: ChatRequest) -> dict[str, Any]:
    """The request's repetition controls (only those it sets)."""
    return {k: v for k, v in (("repetition_penalty", req.repetition_penalty),
                              ("no_repeat_ngram_size", req.no_repeat_ngram_size)) if v is not None}


# -- responses ------------------------------------------------------------------------------------
class TokenText:
    """Token strings as OpenAI returns them: the text of each token and its real bytes (a token that
    holds half of a multi-byte character has exact ``bytes`` and a text with "\ufffd")."""

    def __init__(self, tokenizer) -> None:
        self.token_bytes = TokenBytes(tokenizer)

    def __call__(self, token: str) -> tuple[str, list[int]]:
        raw = self.token_bytes(token)
        return raw.decode("utf-8", errors="replace"), list(raw)


def logprobs_content(generations: list[Generation], text_of: TokenText, top: int) -> list[dict[str, Any]]:
    """OpenAI's ``logprobs.content`` for the tokens of some generations (``id``: our extension)."""
    out = []
    for g in generations:
        for j, (tok, lp) in enumerate(zip(g.tokens, g.logprobs)):
            text, raw = text_of(tok)
            entry: dict[str, Any] = {"token": text, "logprob": lp, "bytes": raw, "top_logprobs": []}
            if j < len(g.token_ids):
                entry["id"] = g.token_ids[j]
            if top and j < len(g.top_logprobs):
                for alt, alp in list(g.top_logprobs[j].items())[:top]:
                    at, ab = text_of(alt)
                    entry["top_logprobs"].append({"token": at, "logprob": alp, "bytes": ab})
            out.append(entry)
    return out


def answer_trace(answer: Answer) -> dict[str, Any]:
    """The ``arag`` field: whether retrieval fired, the trigger score, the sources and the costs."""
    d = answer.to_dict()
    for s in d["steps"]:
        s.pop("draft_tokens", None)  # per-token tables are what `logprobs` is for
    scores = [s.signal.score for s in answer.steps if s.signal is not None]
    if answer.pre_check is not None:
        scores.append(answer.pre_check.score)
    finite = [x for x in scores if math.isfinite(x)]
    return {"mode": "adaptive", "fired": answer.fired, "score": max(finite) if finite else (math.inf if scores else None),
            **d, "score_is_max_over_steps": True}


# -- the service (model work, off the event loop) ------------------------------------------------
class ChatService:
    """Runs requests against one pipeline, one at a time, on a single worker thread."""

    def __init__(self, pipeline: Pipeline, model_name: str | None = None) -> None:
        self.pipeline = pipeline
        self.model_name = model_name or getattr(pipeline.lm, "name", "model")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arag-model")
        self.text_of = TokenText(getattr(pipeline.lm, "tokenizer", None))
        self._triggers: dict[str, Any] = {}

    def model_ids(self) -> list[str]:
        return list(dict.fromkeys([self.model_name, "default"]))

    def _trigger(self, name: str | None):
        if name is None:
            return self.pipeline.trigger
        if name not in self._triggers:
            self._triggers[name] = self.pipeline.make_trigger(name)
        return self._triggers[name]

    def run_adaptive(self, req: ChatRequest, on_text: Callable[[str], None] | None = None) -> dict[str, Any]:
        turn = conversation_turn(req.messages)
        p = self.pipeline
        config = replace(p.config, seed=p.config.seed if req.seed is None else req.seed,
                         top_logprobs=req.top_logprobs if req.logprobs else 0, **_repetition(req))
        loop = AdaptiveRAG(p.lm, p.retriever, self._trigger(req.trigger), config=config)
        answer = loop.answer(turn.question, history=turn.history, retrieval_query=turn.retrieval_query, on_text=on_text)
        trace = answer_trace(answer)
        trace["retrieval_query"] = turn.retrieval_query
        finish = "length" if answer.stop_reason == "step budget" else "stop"
        choice: dict[str, Any] = {"index": 0, "text": answer.text, "finish_reason": finish, "stop_reason": None,
                                  "logprobs": None}
        if req.logprobs:
            gens = [s.generation for s in answer.steps if s.generation is not None]
            choice["logprobs"] = {"content": logprobs_content(gens, self.text_of, req.top_logprobs)}
        usage = {"prompt_tokens": answer.costs.prompt_tokens, "completion_tokens": answer.costs.generated_tokens}
        return {"choices": [choice], "usage": usage, "trace": trace}

    def run_raw(self, req: ChatRequest, on_piece: Callable[[int, str], None] | None = None) -> dict[str, Any]:
        lm = self.pipeline.lm
        msgs = req.messages
        prefix = ""
        if req.continue_final:
            prefix, msgs = msgs[-1][1], msgs[:-1]
        prompt = Prompt(messages=tuple(msgs), prefix=prefix)
        extra: dict[str, Any] = {}
        if req.logprobs and req.top_logprobs and accepts(lm.generate, "top_logprobs"):
            extra["top_logprobs"] = req.top_logprobs
        for name, value in _repetition(req).items():
            if not accepts(lm.generate, name):
                raise APIError(400, f"{name} is not supported by this server's model", name)
            extra[name] = value
        streams: list[StepStream] = []
        if on_piece is not None and can_stream(lm):
            streams = [StepStream((lambda i: lambda s: on_piece(i, s))(i), req.stop) for i in range(req.n)]
            extra["on_text"] = lambda i, text: streams[i].on_text(0, text)
        before = lm.usage.snapshot()
        t0 = time.perf_counter()
        gens = lm.generate([prompt], n=req.n, temperature=req.temperature, top_p=req.top_p,
                           max_new_tokens=req.max_tokens or 256, stop=req.stop or None, seed=req.seed, **extra)[0]
        seconds = time.perf_counter() - t0
        used = lm.usage.since(before)
        choices = []
        for i, g in enumerate(gens):
            if streams:
                streams[i].finish(g.text)
            elif on_piece is not None:
                on_piece(i, g.text)
            choices.append({
                "index": i, "text": g.text, "finish_reason": "stop" if (g.finished or g.stop) else "length",
                "stop_reason": g.stop,
                "logprobs": {"content": logprobs_content([g], self.text_of, req.top_logprobs)} if req.logprobs else None,
            })
        trace = {"mode": "raw", "retrieved": False, "approximate_entropy": any(g.approximate_entropy for g in gens),
                 "costs": {"lm_calls": used.calls, "retriever_calls": 0, "prompt_tokens": used.prompt_tokens,
                           "generated_tokens": used.generated_tokens, "seconds": seconds}}
        return {"choices": choices, "usage": {"prompt_tokens": used.prompt_tokens,
                                              "completion_tokens": used.generated_tokens}, "trace": trace}

    def run(self, req: ChatRequest, on_piece: Callable[[int, str], None] | None = None) -> dict[str, Any]:
        try:
            if req.retrieval:
                return self.run_adaptive(req, (lambda s: on_piece(0, s)) if on_piece else None)
            return self.run_raw(req, on_piece)
        except USER_ERRORS as exc:
            raise APIError(400, str(exc)) from None


# -- the app --------------------------------------------------------------------------------------
def create_app(pipeline: Pipeline, api_key: str | None = None, limits: Limits | None = None,
               model_name: str | None = None):
    """The FastAPI app. ``api_key``: require ``Authorization: Bearer KEY`` on /v1 routes."""
    limits = limits or Limits()
    service = ChatService(pipeline, model_name)
    app = FastAPI(title="adaptive-rag", description="OpenAI-compatible chat completions with adaptive retrieval")
    app.state.service = service

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(APIError(exc.status_code, str(exc.detail), code=code).body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception):
        err = APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error")
        return JSONResponse(err.body(), status_code=500)

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

    async def readjson_text(request: Request) -> Any:
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
        req = parse_request(await readjson_text(request), limits)
        check_model(req.model)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": req.model}
        if req.stream:
            return StreamingResponse(_stream(service, req, meta), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        result = await asyncio.wrap_future(service.executor.submit(service.run, req))
        usage = result["usage"]
        return Response(json_text({
            **meta, "object": "chat.completion", "system_fingerprint": OWNER,
            "choices": [{"index": c["index"], "message": {"role": "assistant", "content": c["text"]},
                         "logprobs": c["logprobs"], "finish_reason": c["finish_reason"],
                         "stop_reason": c["stop_reason"]} for c in result["choices"]],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
            "arag": result["trace"],
        }), media_type="application/json")

    return app


async def _stream(service: ChatService, req: ChatRequest, meta: dict[str, Any]):
    """Server-sent events in OpenAI's chunk format; the model runs on the worker, pieces come back
    through an asyncio queue. A client that goes away stops the generation at its next piece."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    gone = threading.Event()

    def on_piece(index: int, text: str) -> None:
        if gone.is_set():
            raise _ClientGone()
        if text:
            loop.call_soon_threadsafe(queue.put_nowait, ("piece", index, text))

    def work() -> None:
        try:
            result = service.run(req, on_piece)
            loop.call_soon_threadsafe(queue.put_nowait, ("done", result))
        except _ClientGone:
            pass
        except APIError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc.body()))
        except Exception as exc:  # noqa: BLE001 - the stream must end with an error event, not hang
            err = APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error")
            loop.call_soon_threadsafe(queue.put_nowait, ("error", err.body()))

    def chunk(choices: list[dict], **extra) -> str:
        return "data: " + json_text({**meta, "object": "chat.completion.chunk", "system_fingerprint": OWNER,
                                 "choices": choices, **extra}) + "\n\n"

    service.executor.submit(work)
    try:
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None} for i in range(req.n)])
        while True:
            item = await queue.get()
            if item[0] == "piece":
                yield chunk([{"index": item[1], "delta": {"content": item[2]}, "logprobs": None, "finish_reason": None}])
            elif item[0] == "error":
                yield "data: " + json_text(item[1]) + "\n\n"
                break
            else:
                result = item[1]
                for c in result["choices"]:  # logprobs of the whole choice travel with its last chunk
                    yield chunk([{"index": c["index"], "delta": {}, "logprobs": c["logprobs"],
                                  "finish_reason": c["finish_reason"], "stop_reason": c["stop_reason"]}],
                                arag=result["trace"])
                if req.include_usage:
                    u = result["usage"]
                    yield chunk([], usage={**u, "total_tokens": u["prompt_tokens"] + u["completion_tokens"]})
                break
        yield "data: [DONE]\n\n"
    finally:
        gone.set()


class _ClientGone(Exception):
    """Raised inside the model worker to abandon a stream whose client disconnected."""


# -- running it -----------------------------------------------------------------------------------
class ServerThread:
    """Run an app with uvicorn in a background thread (tests, benchmarks, notebooks).

    ``with ServerThread(app) as srv: srv.base_url`` — binds 127.0.0.1 on a free port by default."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
