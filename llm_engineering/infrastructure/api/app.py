"""The RAG inference service (FastAPI).

Endpoints: POST /rag (REST), POST /v1/chat/completions + GET /v1/models (OpenAI-compatible: the `openai` SDK
works unchanged, `stream: true` gives server-sent events), GET /health (liveness), GET /ready (warehouse,
vector store and LLM reachable, naming the one that is not), GET / (chat page).

Guard rails: validated input (empty or oversized query → 422 with a clear message, never echoing the input),
optional API key (401), bounded in-flight requests (503 + Retry-After), a whole-request timeout and upstream
timeouts (504), unreachable dependencies (503 naming the setting), and no stack trace in any response.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_engineering.application.rag.rag_service import RAGAnswer, RAGService, Source
from llm_engineering.domain.errors import (
    LLMRequestError,
    LLMTimeoutError,
    LLMTwinError,
    ServiceUnavailableError,
    UnknownAuthorError,
)
from llm_engineering.infrastructure.api.chat_page import render_chat_page
from llm_engineering.infrastructure.api.schemas import (
    RAG_MODEL_ID,
    ChatCompletionRequest,
    RAGRequest,
    RAGResponse,
)
from llm_engineering.settings import Settings, get_settings

MAX_BODY_BYTES = 1_000_000  # far above any valid request; stops a client from making us parse megabytes
RETRY_AFTER_S = 2


class APIError(Exception):
    """An error with an HTTP status and a message safe to show to the client."""

    def __init__(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}


def _error_body(message: str, kind: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # `detail` for REST clients (FastAPI style), `error` for OpenAI SDK clients: both read what they expect.
    body: dict[str, Any] = {"detail": message, "error": {"message": message, "type": kind, "code": None}}
    if errors:
        body["errors"] = errors
    return body


def _map_exception(exc: BaseException) -> APIError:
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


class InFlightLimiter:
    """At most `limit` requests at once; the next one is refused at once (503), not queued behind them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_acquire(self) -> bool:
        # Single event loop: no await between the check and the increment, so no lock is needed.
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active = max(0, self.active - 1)


def _validate_query(text: str, settings: Settings, field: str) -> str:
    query = text.strip()
    if not query:
        raise APIError(422, f"{field} must not be empty", "invalid_request_error")
    if len(query) > settings.inference_max_query_chars:
        raise APIError(
            422,
            f"{field} is {len(query)} characters long; the limit is {settings.inference_max_query_chars} "
            "(INFERENCE_MAX_QUERY_CHARS)",
            "invalid_request_error",
        )
    return query


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


def _sources_footer(sources: list[Source]) -> str:
    if not sources:
        return ""
    lines = [f"[{s.number}] {s.title} — {s.link}" for s in sources]
    return "\n\nSources:\n" + "\n".join(lines)


def create_app(settings: Settings | None = None, rag_service: RAGService | None = None) -> FastAPI:
    """The app. Nothing connects at creation; the RAG service is built on startup (or given, for tests)."""
    settings = settings or get_settings()
    limiter = InFlightLimiter(settings.inference_max_in_flight)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if rag_service is not None:
            app.state.rag = rag_service
        else:
            from llm_engineering.application.rag.rag_service import build_rag_service

            app.state.rag = build_rag_service(settings)
        try:
            yield
        finally:
            if rag_service is None:
                await app.state.rag.aclose()

    app = FastAPI(
        title="LLM Twin RAG service",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.limiter = limiter
    app.state.settings = settings

    # --- errors: one JSON shape, no stack traces ----------------------------------------------------------------
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(_error_body(exc.message, exc.kind), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
            errors.append({"loc": location, "msg": error.get("msg", "invalid"), "type": error.get("type")})
        message = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)[:1000]  # never echo the (huge) input
        return JSONResponse(_error_body(message, "invalid_request_error", errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            _error_body(str(exc.detail), "invalid_request_error"), status_code=exc.status_code, headers=exc.headers
        )

    # Known errors get their own handlers: the catch-all Exception handler runs in Starlette's outermost
    # middleware, which re-raises after responding (noisy logs) — fine only for genuine bugs.
    @app.exception_handler(LLMTwinError)
    @app.exception_handler(TimeoutError)
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error = _map_exception(exc)
        if error.status >= 500 and error.status not in (503, 504):
            logger.opt(exception=exc).error(f"{request.method} {request.url.path} failed")
        else:
            logger.warning(f"{request.method} {request.url.path}: {error.status} {error.message}")
        return JSONResponse(_error_body(error.message, error.kind), status_code=error.status, headers=error.headers)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse(
                _error_body(f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error"), status_code=413
            )
        return await call_next(request)

    # --- dependencies ------------------------------------------------------------------------------------------
    async def require_api_key(request: Request) -> None:
        expected = settings.inference_api_key.get_secret_value() if settings.inference_api_key else ""
        if not expected:
            return
        supplied = request.headers.get("x-api-key", "")
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            supplied = authorization[7:].strip()
        if not supplied or not secrets.compare_digest(supplied.encode(), expected.encode()):
            raise APIError(
                401,
                "missing or invalid API key: send `Authorization: Bearer <INFERENCE_API_KEY>`",
                "authentication_error",
                {"WWW-Authenticate": "Bearer"},
            )

    def rag(request: Request) -> RAGService:
        return request.app.state.rag

    def acquire_slot() -> None:
        if not limiter.try_acquire():
            raise APIError(
                503,
                f"busy: {limiter.limit} requests in flight (INFERENCE_MAX_IN_FLIGHT); retry shortly",
                "overloaded",
                {"Retry-After": str(RETRY_AFTER_S)},
            )

    # --- health --------------------------------------------------------------------------------------------------
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "in_flight": limiter.active, "max_in_flight": limiter.limit}

    @app.get("/ready")
    async def ready(service: RAGService = Depends(rag)) -> JSONResponse:
        checks = await service.check_ready()
        down = [name for name, check in checks.items() if not check["ok"]]
        body = {"ready": not down, "not_ready": down, "checks": checks}
        return JSONResponse(body, status_code=503 if down else 200)

    @app.get("/", response_class=HTMLResponse)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(render_chat_page(settings.inference_max_query_chars))

    # --- REST ------------------------------------------------------------------------------------------------------
    @app.post("/rag", response_model=RAGResponse, dependencies=[Depends(require_api_key)])
    async def rag_endpoint(body: RAGRequest, service: RAGService = Depends(rag)) -> RAGAnswer:
        query = _validate_query(body.query, settings, "query")
        acquire_slot()
        try:
            async with asyncio.timeout(settings.inference_request_timeout_s):
                return await service.answer(query, k=body.k, author=body.author, max_tokens=body.max_tokens)
        finally:
            limiter.release()

    # --- OpenAI-compatible -----------------------------------------------------------------------------------------
    @app.get("/v1/models", dependencies=[Depends(require_api_key)])
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": RAG_MODEL_ID, "object": "model", "created": 0, "owned_by": "llm-twin"}],
        }

    @app.post("/v1/chat/completions", dependencies=[Depends(require_api_key)])
    async def chat_completions(body: ChatCompletionRequest, service: RAGService = Depends(rag)):
        last = body.messages[-1]
        if last.role != "user":
            raise APIError(422, "the last message must come from the user", "invalid_request_error")
        query = _validate_query(last.text(), settings, "messages[-1].content")
        history = [{"role": m.role, "content": m.text()} for m in body.messages[:-1] if m.role in ("user", "assistant")]
        max_tokens = body.max_completion_tokens or body.max_tokens
        kwargs = dict(k=body.k, author=body.author, history=history, max_tokens=max_tokens)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        acquire_slot()
        if not body.stream:
            try:
                async with asyncio.timeout(settings.inference_request_timeout_s):
                    answer = await service.answer(query, temperature=body.temperature, **kwargs)
            finally:
                limiter.release()
            content = answer.answer + (_sources_footer(answer.sources) if body.sources_footer else "")
            return {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": RAG_MODEL_ID,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": answer.finish_reason or "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": answer.tokens.get("prompt", 0),
                    "completion_tokens": answer.tokens.get("completion", 0),
                    "total_tokens": answer.tokens.get("prompt", 0) + answer.tokens.get("completion", 0),
                },
                "sources": [s.model_dump() for s in answer.sources],
                "rag": _rag_extras(answer),
            }

        # Streaming: retrieval runs before the response starts, so its failures still get a real status code.
        events = service.stream(query, temperature=body.temperature, **kwargs)
        deadline = time.monotonic() + settings.inference_request_timeout_s
        try:
            async with asyncio.timeout(settings.inference_request_timeout_s):
                first = await anext(events)
        except BaseException:
            limiter.release()
            await events.aclose()
            raise

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            return _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": RAG_MODEL_ID,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
            )

        async def stream_body() -> AsyncIterator[bytes]:
            sources: list[Source] = first.data if first.kind == "sources" else []
            try:
                yield chunk({"role": "assistant", "content": ""}, sources=[s.model_dump() for s in sources])
                async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
                    async for event in events:
                        if event.kind == "delta":
                            yield chunk({"content": event.data})
                        elif event.kind == "done":
                            answer: RAGAnswer = event.data
                            if body.sources_footer and answer.sources:
                                yield chunk({"content": _sources_footer(answer.sources)})
                            yield chunk({}, answer.finish_reason or "stop", rag=_rag_extras(answer))
                            if body.stream_options and body.stream_options.include_usage:
                                prompt, completion = answer.tokens.get("prompt", 0), answer.tokens.get("completion", 0)
                                usage = {
                                    "prompt_tokens": prompt,
                                    "completion_tokens": completion,
                                    "total_tokens": prompt + completion,
                                }
                                yield _sse(
                                    {
                                        "id": completion_id,
                                        "object": "chat.completion.chunk",
                                        "created": created,
                                        "model": RAG_MODEL_ID,
                                        "choices": [],
                                        "usage": usage,
                                    }
                                )
            except Exception as exc:  # the status line is gone: report the error in the stream itself
                error = _map_exception(exc)
                logger.warning(f"stream failed: {error.status} {error.message}")
                yield _sse(_error_body(error.message, error.kind))
            finally:
                limiter.release()
                await events.aclose()
            yield _sse("[DONE]")

        return StreamingResponse(
            stream_body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def _rag_extras(answer: RAGAnswer) -> dict[str, Any]:
    return {
        "author": answer.author,
        "author_method": answer.author_method,
        "expanded_queries": answer.expanded_queries,
        "timings_ms": answer.timings_ms,
        "tokens": answer.tokens,
        "notes": answer.notes,
    }


__all__ = ["create_app"]
