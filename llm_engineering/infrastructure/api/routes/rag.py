"""POST /rag: an answer in the author's voice with its [n] sources, timings and token counts."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from llm_engineering.application.rag.rag_service import RAGAnswer
from llm_engineering.infrastructure.api.deps import (
    RAGServiceDep,
    SettingsDep,
    in_flight_slot,
    require_api_key,
    validate_query,
)
from llm_engineering.infrastructure.api.schemas import RAGRequest, RAGResponse

router = APIRouter(tags=["rag"], dependencies=[Depends(require_api_key)])


@router.post("/rag", response_model=RAGResponse, dependencies=[Depends(in_flight_slot)])
async def rag(body: RAGRequest, service: RAGServiceDep, settings: SettingsDep) -> RAGAnswer:
    query = validate_query(body.query, settings, "query")
    async with asyncio.timeout(settings.inference_request_timeout_s):
        return await service.answer(query, k=body.k, author=body.author, max_tokens=body.max_tokens)
