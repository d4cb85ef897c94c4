"""POST /rag: an answer in the author's voice with its [n] sources, timings and token counts."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from llm_engineering.application.rag.rag_service import RAGAnswer
from llm_engineering.infrastructure.api.deps import (
    LLMSlotDep,
    RAGServiceDep,
    SettingsDep,
    require_api_key,
    validate_query,
)
from llm_engineering.infrastructure.api.errors import ERROR_RESPONSES
from llm_engineering.infrastructure.api.schemas import RAGRequest, RAGResponse

router = APIRouter(tags=["rag"], dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES)


@router.post("/rag", response_model=RAGResponse)
async def rag(body: RAGRequest, service: RAGServiceDep, settings: SettingsDep, slot: LLMSlotDep) -> RAGAnswer:
    query = validate_query(body.query, settings, "query")
    async with asyncio.timeout(slot.remaining_s()):
        return await service.answer(
            query,
            k=body.k,
            author=body.author,
            max_tokens=body.max_tokens,
            degraded=slot.degraded,
            deadline=slot.deadline,
        )
