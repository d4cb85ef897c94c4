"""GET /: the chat page (one self-contained HTML page, no external assets).

With INFERENCE_API_KEY set, the page needs the key like every route but /health: a browser opens
`/?api_key=<key>` once, which sets an HttpOnly, SameSite=Strict cookie and redirects to `/` (the key leaves the
address bar and the history); the page's own requests then carry the cookie.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from llm_engineering.infrastructure.api.chat_page import page_csp, render_chat_page
from llm_engineering.infrastructure.api.deps import API_KEY_COOKIE, SettingsDep, api_key_matches, require_api_key
from llm_engineering.infrastructure.api.errors import ERROR_RESPONSES

router = APIRouter(tags=["page"], responses={401: ERROR_RESPONSES[401]})


@router.get("/", response_class=HTMLResponse)
async def chat_page(request: Request, settings: SettingsDep, api_key: str | None = None) -> Response:
    if settings.inference_api_key is not None and api_key is not None and api_key_matches(settings, api_key):
        redirect = RedirectResponse("/", status_code=303)
        redirect.set_cookie(API_KEY_COOKIE, api_key, httponly=True, samesite="strict", path="/")
        return redirect
    await require_api_key(request, settings)
    nonce = secrets.token_urlsafe(16)
    page = HTMLResponse(render_chat_page(settings.inference_max_query_chars, nonce))
    page.headers["Content-Security-Policy"] = page_csp(nonce)
    return page
