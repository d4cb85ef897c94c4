"""Typed dependencies of the routes: settings, services, the API-key check and the admission slot."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from llm_engineering.application.rag.rag_service import RAGService
from llm_engineering.application.rag.search import SearchService
from llm_engineering.infrastructure.api.admission import AdmissionController
from llm_engineering.infrastructure.api.errors import APIError
from llm_engineering.infrastructure.serving.follower import ServingFollower
from llm_engineering.settings import Settings


@dataclass
class Slot:
    """An admitted request: whether the service is busy (answer in degraded mode) and its deadline."""

    degraded: bool
    deadline: float  # time.monotonic()
    started: float

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_rag_service(request: Request) -> AsyncIterator[RAGService]:
    """The service that answers now (a hot switch swaps it: serving/follower.py), held until the response is sent:
    a request keeps the service it started with, and a replaced service's LLM client closes after its last one."""
    serving: ServingFollower | None = getattr(request.app.state, "serving", None)
    if serving is None:  # before startup: the given service
        yield request.app.state.rag
        return
    async with serving.lease() as service:
        request.app.state.rag = serving.current
        yield service


def get_serving(request: Request) -> ServingFollower | None:
    return getattr(request.app.state, "serving", None)


def get_search_service(request: Request) -> SearchService:
    return request.app.state.search


def get_llm_admission(request: Request) -> AdmissionController:
    return request.app.state.llm_admission


def get_search_admission(request: Request) -> AdmissionController:
    return request.app.state.search_admission


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RAGServiceDep = Annotated[RAGService, Depends(get_rag_service)]
ServingDep = Annotated[ServingFollower | None, Depends(get_serving)]
SearchServiceDep = Annotated[SearchService, Depends(get_search_service)]
LLMAdmissionDep = Annotated[AdmissionController, Depends(get_llm_admission)]
SearchAdmissionDep = Annotated[AdmissionController, Depends(get_search_admission)]


API_KEY_COOKIE = "llm_twin_api_key"


def supplied_api_key(request: Request) -> str:
    """The key a client sent: `Authorization: Bearer`, `X-API-Key`, or the chat page's cookie."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.headers.get("x-api-key", "") or request.cookies.get(API_KEY_COOKIE, "")


def api_key_matches(settings: Settings, supplied: str) -> bool:
    """True when no key is configured, or `supplied` is the key (compared in constant time)."""
    expected = settings.inference_api_key.get_secret_value() if settings.inference_api_key else ""
    if not expected:
        return True
    return bool(supplied) and secrets.compare_digest(supplied.encode("utf-8", "replace"), expected.encode())


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Every route but /health needs INFERENCE_API_KEY when it is set."""
    if not api_key_matches(settings, supplied_api_key(request)):
        raise APIError(
            401,
            "missing or invalid API key: send `Authorization: Bearer <INFERENCE_API_KEY>`",
            "authentication_error",
            {"WWW-Authenticate": "Bearer"},
        )


async def _admitted(admission: AdmissionController, settings: Settings) -> AsyncIterator[Slot]:
    started = time.monotonic()
    degraded = await admission.acquire()
    if degraded is None:
        raise APIError(
            503,
            f"busy: {admission.active} requests in flight, the capacity measured on this machine (at most "
            f"INFERENCE_MAX_IN_FLIGHT={admission.max_limit}); retry after the Retry-After delay",
            "overloaded",
            {"Retry-After": str(admission.retry_after_s())},
        )
    # The budget counts from arrival: time spent waiting for the slot is part of it.
    slot = Slot(degraded=degraded, deadline=started + settings.inference_request_timeout_s, started=started)
    ok = False
    try:
        yield slot
        ok = True
    finally:
        # After the response is sent (a streamed body included) and on every exit path, disconnects included.
        await admission.release(time.monotonic() - started if ok else None, ok)


async def llm_slot(admission: LLMAdmissionDep, settings: SettingsDep) -> AsyncIterator[Slot]:
    """A slot for a request that calls the LLM (/rag, /v1/chat/completions)."""
    async for slot in _admitted(admission, settings):
        yield slot


async def search_slot(admission: SearchAdmissionDep, settings: SettingsDep) -> AsyncIterator[Slot]:
    """A slot for /search (retrieval only: its own, larger pool)."""
    async for slot in _admitted(admission, settings):
        yield slot


LLMSlotDep = Annotated[Slot, Depends(llm_slot)]
SearchSlotDep = Annotated[Slot, Depends(search_slot)]


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
