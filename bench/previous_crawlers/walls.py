"""Recognise pages that stand between the crawler and the content: anti-bot challenges and login walls.

A wall is judged on the page title and on short pages only, so an article that merely talks about
captchas ("verify you are human") is not mistaken for one.
"""

from __future__ import annotations

from bs4 import BeautifulSoup
from bs4.element import PreformattedString

BOT_WALL_TITLES = (
    "just a moment",
    "attention required",
    "please wait while we verify",
    "security check",
    "are you a robot",
    "access denied",
    "ddos-guard",
)
BOT_WALL_TEXTS = (
    "verify you are human",
    "verifying you are human",
    "checking your browser",
    "checking if the site connection is secure",
    "enable javascript and cookies to continue",
    "please complete the security check",
    "press & hold",
    "are you a robot",
    "unusual traffic from your computer",
)
AUTH_WALL_TEXTS = (
    "sign in to view",
    "sign in to see",
    "join now to see",
    "join to view",
    "you must be signed in",
    "log in to continue",
    "sign in to continue",
    "login required",
)
AUTH_WALL_URL_PARTS = ("/authwall", "/login", "/checkpoint", "/uas/login", "/signup")
# A real article is longer than this; challenge and login pages are far shorter.
SHORT_PAGE_CHARS = 3000


_INVISIBLE = frozenset({"script", "style", "noscript", "template", "head", "title"})


def _title_and_text(soup: BeautifulSoup) -> tuple[str, str]:
    title = soup.title.get_text(" ", strip=True).lower() if soup.title else ""
    body = soup.body or soup
    strings = (
        s
        for s in body.find_all(string=True)
        if not isinstance(s, PreformattedString) and s.parent is not None and s.parent.name not in _INVISIBLE
    )
    text = " ".join(" ".join(strings).split()).lower()
    return title, text


def detect_bot_wall(soup: BeautifulSoup) -> str | None:
    """A short description of the anti-bot challenge on this page, or None."""
    title, text = _title_and_text(soup)
    for marker in BOT_WALL_TITLES:
        if marker in title:
            return f"anti-bot challenge page ({title.strip()!r})"
    if len(text) <= SHORT_PAGE_CHARS:
        for marker in BOT_WALL_TEXTS:
            if marker in text:
                return f"anti-bot challenge page ({marker!r})"
    return None


def detect_auth_wall(soup: BeautifulSoup, url: str = "") -> str | None:
    """A short description of the login wall on this page, or None."""
    lowered_url = url.lower()
    for part in AUTH_WALL_URL_PARTS:
        if part in lowered_url:
            return f"redirected to a login page ({url})"
    if soup.select_one("input[name=session_key], input[name=session_password], form.authwall, .authwall-join-form"):
        return "login form instead of content"
    _, text = _title_and_text(soup)
    if len(text) <= SHORT_PAGE_CHARS:
        for marker in AUTH_WALL_TEXTS:
            if marker in text:
                return f"login wall ({marker!r})"
    return None
