"""GET /health (liveness: the process answers) and GET /ready (warehouse, vector store and LLM reachable)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from llm_engineering.domain.redaction import public_message
from llm_engineering.infrastructure.api.deps import LLMAdmissionDep, RAGServiceDep, ServingDep, require_api_key
from llm_engineering.infrastructure.api.errors import ERROR_RESPONSES

router = APIRouter(tags=["health"], responses=ERROR_RESPONSES)


@router.get("/health")
async def health(admission: LLMAdmissionDep) -> dict[str, Any]:
    """Liveness, and how busy the answer path is (open: no API key needed)."""
    snapshot = admission.snapshot()
    return {"status": "ok", "in_flight": snapshot["active"], "max_in_flight": snapshot["limit"], "admission": snapshot}


@router.get("/ready", dependencies=[Depends(require_api_key)])
async def ready(service: RAGServiceDep, serving: ServingDep) -> JSONResponse:
    """Dependencies reachable, and which model version answers now (`serving`: its engine, and requests still
    finishing on an engine a hot switch replaced)."""
    checks = await service.check_ready()
    for check in checks.values():  # names the setting at fault, never its value (a URI may hold a password)
        check["detail"] = public_message(str(check["detail"]))
    down = [name for name, check in checks.items() if not check["ok"]]
    model = service.config.model_label or service.llm.model
    body = {"ready": not down, "not_ready": down, "checks": checks, "model": model}
    if serving is not None:
        body["serving"] = serving.describe()
    return JSONResponse(body, status_code=503 if down else 200)
