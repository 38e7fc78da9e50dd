"""The one place that renders errors as OpenAI does: ``{"error": {"message", "type", "param", "code"}}``.

Every failure a client sees (a bad request, an unknown route, a server fault, an error event in a
stream) goes through `APIError.body`, so OpenAI clients raise their usual exception classes with the
message and parameter our server meant.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class APIError(Exception):
    """An error the client caused (or a server failure), rendered as OpenAI-style JSON."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def server_error(exc: BaseException) -> APIError:
    """A bug or an unexpected failure: 500, named by its exception class."""
    return APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error")


def install_error_handlers(app: FastAPI) -> None:
    """Render our errors, Starlette's (404 route, 405 method) and anything unexpected as OpenAI JSON."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return APIError(exc.status_code, str(exc.detail), code=code).response()

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception):
        return server_error(exc).response()
