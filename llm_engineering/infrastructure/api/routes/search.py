"""POST /search: ranked chunks without the LLM (for users, and for latency checks)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from llm_engineering.infrastructure.api.deps import (
    SearchServiceDep,
    SearchSlotDep,
    SettingsDep,
    require_api_key,
    validate_query,
)
from llm_engineering.infrastructure.api.errors import ERROR_RESPONSES
from llm_engineering.infrastructure.api.schemas import SearchHit, SearchRequest, SearchResponse

router = APIRouter(tags=["search"], dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES)


@router.post("/search", response_model=SearchResponse)
async def search(
    body: SearchRequest, service: SearchServiceDep, settings: SettingsDep, slot: SearchSlotDep
) -> SearchResponse:
    query = validate_query(body.query, settings, "query")
    k = body.k or settings.rag_k
    async with asyncio.timeout(slot.remaining_s()):
        # Embedding + store search are blocking: off the event loop.
        result = await asyncio.to_thread(service.search, query, k, body.author, body.mode)
    meta = result.metadata
    return SearchResponse(
        query=query,
        mode=meta.get("mode", body.mode or "hybrid"),
        author=result.author_full_name,
        author_source=meta.get("author_source", "none"),
        hits=[
            SearchHit(
                rank=hit.rank,
                score=hit.score,
                link=hit.chunk.link,
                title=hit.chunk.title,
                author=hit.chunk.author_full_name,
                text=hit.chunk.text,
                document_id=str(hit.chunk.document_id),
                chunk_id=str(hit.chunk.id),
            )
            for hit in result.hits
        ],
        timings_ms=meta.get("timings_ms", {}),
        notes=[meta["warning"]] if meta.get("warning") else [],
    )
