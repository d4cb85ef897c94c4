"""The RAG inference service (FastAPI), laid out as FastAPI's full-stack template does: routers per resource
(`routes/`), typed dependencies (`deps.py`), pydantic payloads (`schemas.py`), one error mapping (`errors.py`).

Endpoints: POST /rag (REST), POST /search (retrieval without the LLM), POST /v1/chat/completions + GET /v1/models
(OpenAI-compatible: the `openai` SDK works unchanged, `stream: true` gives server-sent events), GET /health
(liveness), GET /ready (warehouse, vector store and LLM reachable, naming the one that is not), GET / (chat page).

Guard rails (docs/inference.md): validated input (422 with a clear message, never echoing the input, invalid
Unicode included), a body limit enforced on the byte stream (413), an optional API key on every route but
/health (401), admission sized to measured capacity with a degraded busy mode (503 + Retry-After beyond it),
a whole-request budget (504), unreachable dependencies (503 naming the setting, never its value), a Host
allow-list, CORS closed unless configured, security headers, and no stack trace in any response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_engineering.application.rag.rag_service import RAGService
from llm_engineering.application.rag.search import SearchService
from llm_engineering.infrastructure.api.admission import AdmissionController
from llm_engineering.infrastructure.api.deps import require_api_key
from llm_engineering.infrastructure.api.errors import error_body, install_error_handlers
from llm_engineering.infrastructure.api.routes import health, openai, page, rag, search
from llm_engineering.infrastructure.serving.follower import ServingFollower
from llm_engineering.infrastructure.serving.state import serving_state_path
from llm_engineering.settings import Settings, get_settings

MAX_BODY_BYTES = 1_000_000  # far above any valid request; stops a client from making us parse megabytes
# Responses other than the chat page and the docs carry no active content: forbid everything, and framing.
DEFAULT_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
DOCS_CSP = (  # Swagger UI loads its script and style from jsDelivr and runs one inline script
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; style-src https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'"
)


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class BodySizeLimit:
    """Refuse bodies over `max_bytes`, whether announced by Content-Length or sent chunked: the bytes are
    counted as they arrive, so a chunked 30 MB upload stops at the first megabyte."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            too_large = _BodyTooLarge(self.max_bytes)
            response = JSONResponse(error_body(too_large.detail, "invalid_request_error"), status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)  # FastAPI re-raises HTTP errors met reading the body
            return message

        await self.app(scope, counting_receive, send)


class HostAllowList:
    """Only requests addressed to an allowed Host are served: a web page on another origin cannot reach a
    loopback service by rebinding its own DNS name to 127.0.0.1 (DNS rebinding)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            name = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
            if name not in self.allowed:
                message = "Host header not allowed: add the name clients use to INFERENCE_ALLOWED_HOSTS"
                response = JSONResponse(error_body(message, "invalid_request_error"), status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Default security headers on every response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.lower().encode(), value.encode())
                    for name, value in DEFAULT_HEADERS.items()
                    if name.lower().encode() not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    settings: Settings | None = None,
    rag_service: RAGService | None = None,
    search_service: SearchService | None = None,
    *,
    services: Any = None,
) -> FastAPI:
    """The app. Nothing connects at creation. Its entry point hands it its services: either built ones
    (`rag_service`, `search_service`: tests) or a provider whose `rag_service` / `search_service` attributes are
    read on startup (the composition root's container: `tools/serve.py`). The API never builds adapters itself."""
    settings = settings or get_settings()
    if services is None and (rag_service is None or search_service is None):
        raise TypeError("create_app needs rag_service and search_service, or services= (the container)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.rag = rag_service or services.rag_service
        app.state.search = search_service or services.search_service
        # The model answering follows the serving state file (a hot switch: docs/serving.md); the provider builds
        # the service for another engine (`rag_service_for`). A given service (tests) is never swapped.
        app.state.serving = ServingFollower(
            serving_state_path(settings),
            app.state.rag,
            getattr(services, "rag_service_for", None) if rag_service is None else None,
            default_key=(settings.llm_base_url, settings.llm_model_id),
        )
        app.state.serving.refresh(force=True)
        try:
            yield
        finally:
            await app.state.serving.aclose(close_current=rag_service is None)

    # The docs and the schema need the API key too (routes below), so FastAPI's open ones are switched off.
    app = FastAPI(
        title="LLM Twin RAG service",
        version="0.2.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.rag, app.state.search = rag_service, search_service  # given ones serve before startup, too
    app.state.serving = None  # set on startup
    budget = settings.inference_request_timeout_s
    app.state.llm_admission = AdmissionController(
        name="llm",
        max_limit=settings.inference_max_in_flight,
        initial_limit=settings.inference_initial_in_flight,
        target_s=budget / 2,  # admitted requests must finish well inside their budget
        queue_wait_s=settings.inference_queue_wait_s,
    )
    app.state.search_admission = AdmissionController(
        name="search",
        max_limit=settings.inference_max_search_in_flight,
        initial_limit=settings.inference_max_search_in_flight,
        target_s=budget / 4,
        queue_wait_s=settings.inference_queue_wait_s,
    )
    install_error_handlers(app)
    for module in (health, page, rag, search, openai):
        app.include_router(module.router)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_api_key)])
    async def openapi_schema() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_api_key)])
    async def swagger_ui() -> HTMLResponse:
        docs = get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")
        docs.headers["Content-Security-Policy"] = DOCS_CSP
        return docs

    # Outermost last: the Host check and body limit run before anything else reads the request.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    if "*" not in settings.allowed_hosts:
        app.add_middleware(HostAllowList, allowed_hosts=settings.allowed_hosts)
    return app


__all__ = ["create_app"]
