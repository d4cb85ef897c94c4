"""The RAG inference service (FastAPI), laid out as FastAPI's full-stack template does: routers per resource
(`routes/`), typed dependencies (`deps.py`), pydantic payloads (`schemas.py`), one error mapping (`errors.py`).

Endpoints: POST /rag (REST), POST /search (retrieval without the LLM), POST /v1/chat/completions + GET /v1/models
(OpenAI-compatible: the `openai` SDK works unchanged, `stream: true` gives server-sent events), GET /health
(liveness), GET /ready (warehouse, vector store and LLM reachable, naming the one that is not), GET / (chat page).

Guard rails: validated input (empty or oversized query → 422 with a clear message, never echoing the input),
optional API key (401), bounded in-flight requests (503 + Retry-After), a whole-request timeout and upstream
timeouts (504), unreachable dependencies (503 naming the setting), and no stack trace in any response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from llm_engineering.application.rag.rag_service import RAGService
from llm_engineering.application.rag.search import SearchService
from llm_engineering.infrastructure.api.deps import InFlightLimiter
from llm_engineering.infrastructure.api.errors import error_body, install_error_handlers
from llm_engineering.infrastructure.api.routes import health, openai, page, rag, search
from llm_engineering.settings import Settings, get_settings

MAX_BODY_BYTES = 1_000_000  # far above any valid request; stops a client from making us parse megabytes


def create_app(
    settings: Settings | None = None,
    rag_service: RAGService | None = None,
    search_service: SearchService | None = None,
) -> FastAPI:
    """The app. Nothing connects at creation; services come from the composition root on startup (or are
    given, for tests)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if rag_service is None or search_service is None:
            from llm_engineering.wiring import get_container

            container = get_container(settings)
        app.state.rag = rag_service or container.rag_service
        app.state.search = search_service or container.search_service
        try:
            yield
        finally:
            if rag_service is None:
                await app.state.rag.aclose()

    app = FastAPI(title="LLM Twin RAG service", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.limiter = InFlightLimiter(settings.inference_max_in_flight)
    install_error_handlers(app)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse(
                error_body(f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error"), status_code=413
            )
        return await call_next(request)

    for module in (health, page, rag, search, openai):
        app.include_router(module.router)
    return app


__all__ = ["create_app"]
