"""One JSON error shape for every failure, mapped from the project's errors; no stack trace in any response."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_engineering.domain.errors import (
    InputTooLargeError,
    LLMRequestError,
    LLMTimeoutError,
    LLMTwinError,
    ServiceUnavailableError,
    UnknownAuthorError,
)
from llm_engineering.domain.redaction import public_message, redact_credentials

RETRY_AFTER_S = 2


class APIError(Exception):
    """An error with an HTTP status and a message safe to show to the client."""

    def __init__(
        self, status: int, message: str, kind: str, headers: dict[str, str] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}
        self.code = code


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error | authentication_error | overloaded | timeout | ...")
    code: str | None = None


class FieldError(BaseModel):
    loc: str
    msg: str
    type: str | None = None


class ErrorResponse(BaseModel):
    """Every error: `detail` for REST clients (FastAPI style), `error` for OpenAI SDK clients."""

    detail: str
    error: ErrorDetail
    errors: list[FieldError] | None = Field(default=None, description="Per-field problems of a 422.")


# Documented on every route, replacing FastAPI's default 422 schema, so responses match the published schema.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        401: "Missing or invalid API key",
        413: "Request body too large",
        422: "Invalid request",
        502: "The LLM rejected the request",
        503: "Busy or a dependency is unavailable (see Retry-After)",
        504: "The request took longer than its budget",
    }.items()
}


def error_body(
    message: str, kind: str, errors: list[dict[str, Any]] | None = None, code: str | None = None
) -> dict[str, Any]:
    # Setting values, URLs and credentials never reach a client: they may name internal hosts or hold passwords.
    message = public_message(message)
    body: dict[str, Any] = {"detail": message, "error": {"message": message, "type": kind, "code": code}}
    if errors:
        body["errors"] = errors
    return body


def map_exception(exc: BaseException) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, UnknownAuthorError | InputTooLargeError):
        return APIError(422, str(exc), "invalid_request_error")
    if isinstance(exc, LLMTimeoutError | TimeoutError):
        message = str(exc) if isinstance(exc, LLMTimeoutError) else "the request took longer than allowed"
        return APIError(504, f"upstream timeout: {message}", "timeout")
    if isinstance(exc, ServiceUnavailableError):
        # A dependency that is down, refuses our login or times out: the client may retry; the body names it.
        dependency = getattr(exc, "dependency", None)
        code = f"{dependency}_unavailable" if dependency else None
        return APIError(503, str(exc), "service_unavailable", {"Retry-After": str(RETRY_AFTER_S * 5)}, code)
    if isinstance(exc, LLMRequestError):
        return APIError(502, str(exc), "upstream_error")
    if isinstance(exc, LLMTwinError):
        return APIError(500, str(exc), "server_error")
    return APIError(500, "internal error; see the service log", "server_error")


def _readable(error: dict[str, Any]) -> str:
    """pydantic's message, but in words for the blank-question pattern."""
    if error.get("type") in ("string_pattern_mismatch", "string_too_short") and (
        (error.get("ctx") or {}).get("pattern") == r"\S" or error.get("type") == "string_too_short"
    ):
        return "must not be empty"
    return str(error.get("msg", "invalid"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.message, exc.kind, code=exc.code), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            errors.append({"loc": location, "msg": _readable(error), "type": error.get("type")})
        message = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)[:1000]  # never echo the (huge) input
        return JSONResponse(error_body(message, "invalid_request_error", errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI could not decode the body (e.g. invalid UTF-8): an invalid request like any other, a 422.
            message = "body: not valid JSON text (it must be UTF-8 encoded JSON)"
            return JSONResponse(error_body(message, "invalid_request_error"), status_code=422)
        return JSONResponse(
            error_body(str(exc.detail), "invalid_request_error"), status_code=exc.status_code, headers=exc.headers
        )

    # Known errors get their own handlers: the catch-all Exception handler runs in Starlette's outermost
    # middleware, which re-raises after responding (noisy logs) — fine only for genuine bugs.
    @app.exception_handler(LLMTwinError)
    @app.exception_handler(TimeoutError)
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request.method, request.url.path, exc)

    # Innermost of the middlewares (added first): an exception no handler above took (a bug, a driver error)
    # becomes its JSON response here. Left to Starlette's outermost handler it would be answered and then
    # re-raised, and uvicorn drops the keep-alive connection ("Exception in ASGI application", a reset).
    app.add_middleware(UnhandledErrors)


def error_response(method: str, path: str, exc: BaseException) -> JSONResponse:
    """Log `exc` once (a traceback only for genuine bugs; never variable values) and answer with its status."""
    error = map_exception(exc)
    if error.status >= 500 and error.status not in (503, 504):
        logger.opt(exception=exc).error(f"{method} {path} failed")
    else:
        logger.warning(f"{method} {path}: {error.status} {redact_credentials(error.message)}")
    body = error_body(error.message, error.kind, code=error.code)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


class UnhandledErrors:
    """ASGI middleware: any exception before the response started becomes a JSON error response; after it
    started (a streamed body) it is logged and the response ends. Nothing is re-raised to the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                logger.opt(exception=exc).error(f"{scope.get('method')} {scope.get('path')} failed mid-response")
                return
            response = error_response(str(scope.get("method")), str(scope.get("path")), exc)
            await response(scope, receive, send)
