"""Typed dependencies of the routes: settings, services, the API-key check and the in-flight slot."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from llm_engineering.application.rag.rag_service import RAGService
from llm_engineering.application.rag.search import SearchService
from llm_engineering.infrastructure.api.errors import RETRY_AFTER_S, APIError
from llm_engineering.settings import Settings


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


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_rag_service(request: Request) -> RAGService:
    return request.app.state.rag


def get_search_service(request: Request) -> SearchService:
    return request.app.state.search


def get_limiter(request: Request) -> InFlightLimiter:
    return request.app.state.limiter


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RAGServiceDep = Annotated[RAGService, Depends(get_rag_service)]
SearchServiceDep = Annotated[SearchService, Depends(get_search_service)]
LimiterDep = Annotated[InFlightLimiter, Depends(get_limiter)]


async def require_api_key(request: Request, settings: SettingsDep) -> None:
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


async def in_flight_slot(limiter: LimiterDep) -> AsyncIterator[None]:
    """One of INFERENCE_MAX_IN_FLIGHT slots for the whole request, released after the response is sent —
    a streamed body included, and on every exit path (errors, client disconnects)."""
    if not limiter.try_acquire():
        raise APIError(
            503,
            f"busy: {limiter.limit} requests in flight (INFERENCE_MAX_IN_FLIGHT); retry shortly",
            "overloaded",
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        yield
    finally:
        limiter.release()


def validate_query(text: str, settings: Settings, field: str) -> str:
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
