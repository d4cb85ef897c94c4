"""GET /: the chat page (one self-contained HTML page, no external assets)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from llm_engineering.infrastructure.api.chat_page import render_chat_page
from llm_engineering.infrastructure.api.deps import SettingsDep

router = APIRouter(tags=["page"])


@router.get("/", response_class=HTMLResponse)
async def chat_page(settings: SettingsDep) -> HTMLResponse:
    return HTMLResponse(render_chat_page(settings.inference_max_query_chars))
