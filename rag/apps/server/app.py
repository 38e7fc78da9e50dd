"""The FastAPI app: its state (the service, the API key, the body limits), the error handlers and
the routes (`rag.apps.server.routes`, with their checks in `rag.apps.server.helpers`)."""
from __future__ import annotations

from fastapi import FastAPI

from rag.apps.server.errors import install_error_handlers
from rag.apps.server.requests import Limits
from rag.apps.server.routes import router
from rag.apps.server.service import ChatService
from rag.pipeline import Pipeline


def create_app(pipeline: Pipeline, api_key: str | None = None, limits: Limits | None = None,
               model_name: str | None = None, batch_window_ms: float = 5.0, max_batch: int = 16) -> FastAPI:
    """The FastAPI app. ``api_key``: require ``Authorization: Bearer KEY`` on /v1 routes; ``batch_window_ms``
    and ``max_batch``: the micro-batching of concurrent requests (`rag.apps.server.batcher`; ``max_batch=1`` turns it off)."""
    app = FastAPI(title="adaptive-rag", description="OpenAI-compatible completions with adaptive retrieval")
    app.state.service = ChatService(pipeline, model_name, batch_window_ms, max_batch)
    app.state.api_key = api_key
    app.state.limits = limits or Limits()
    install_error_handlers(app)
    app.include_router(router)
    return app
