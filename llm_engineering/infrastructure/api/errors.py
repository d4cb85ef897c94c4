"""One JSON error shape for every failure, mapped from the project's errors; no stack trace in any response."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_engineering.domain.errors import (
    LLMRequestError,
    LLMTimeoutError,
    LLMTwinError,
    ServiceUnavailableError,
    UnknownAuthorError,
)

RETRY_AFTER_S = 2


class APIError(Exception):
    """An error with an HTTP status and a message safe to show to the client."""

    def __init__(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}


def error_body(message: str, kind: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # `detail` for REST clients (FastAPI style), `error` for OpenAI SDK clients: both read what they expect.
    body: dict[str, Any] = {"detail": message, "error": {"message": message, "type": kind, "code": None}}
    if errors:
        body["errors"] = errors
    return body


def map_exception(exc: BaseException) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, UnknownAuthorError):
        return APIError(422, str(exc), "invalid_request_error")
    if isinstance(exc, LLMTimeoutError | TimeoutError):
        message = str(exc) if isinstance(exc, LLMTimeoutError) else "the request took longer than allowed"
        return APIError(504, f"upstream timeout: {message}", "timeout")
    if isinstance(exc, ServiceUnavailableError):
        return APIError(503, str(exc), "service_unavailable", {"Retry-After": str(RETRY_AFTER_S * 5)})
    if isinstance(exc, LLMRequestError):
        return APIError(502, str(exc), "upstream_error")
    if isinstance(exc, LLMTwinError):
        return APIError(500, str(exc), "server_error")
    return APIError(500, "internal error; see the service log", "server_error")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.kind), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            errors.append({"loc": location, "msg": error.get("msg", "invalid"), "type": error.get("type")})
        message = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)[:1000]  # never echo the (huge) input
        return JSONResponse(error_body(message, "invalid_request_error", errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(str(exc.detail), "invalid_request_error"), status_code=exc.status_code, headers=exc.headers
        )

    # Known errors get their own handlers: the catch-all Exception handler runs in Starlette's outermost
    # middleware, which re-raises after responding (noisy logs) — fine only for genuine bugs.
    @app.exception_handler(LLMTwinError)
    @app.exception_handler(TimeoutError)
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error = map_exception(exc)
        if error.status >= 500 and error.status not in (503, 504):
            logger.opt(exception=exc).error(f"{request.method} {request.url.path} failed")
        else:
            logger.warning(f"{request.method} {request.url.path}: {error.status} {error.message}")
        return JSONResponse(error_body(error.message, error.kind), status_code=error.status, headers=error.headers)
