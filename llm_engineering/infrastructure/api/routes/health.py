"""GET /health (liveness: the process answers) and GET /ready (warehouse, vector store and LLM reachable)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from llm_engineering.infrastructure.api.deps import LimiterDep, RAGServiceDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(limiter: LimiterDep) -> dict[str, Any]:
    return {"status": "ok", "in_flight": limiter.active, "max_in_flight": limiter.limit}


@router.get("/ready")
async def ready(service: RAGServiceDep) -> JSONResponse:
    checks = await service.check_ready()
    down = [name for name, check in checks.items() if not check["ok"]]
    body = {"ready": not down, "not_ready": down, "checks": checks}
    return JSONResponse(body, status_code=503 if down else 200)
