"""A fetched web page (pure data; the fetcher lives in infrastructure/http.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import CrawlError


@dataclass
class FetchedPage:
    """The final HTTP answer for one URL (after redirects and retries)."""

    url: str
    status: int
    reason: str
    content: bytes
    charset: str | None = None  # only when the server declared one; HTML parsers sniff <meta charset> otherwise
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    attempts: int = 1

    @property
    def text(self) -> str:
        return self.content.decode(self.charset or "utf-8", errors="replace")

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def ok(self) -> bool:
        return self.status < 400

    def raise_for_status(self, link: str | None = None) -> None:
        if not self.ok:
            tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
            raise CrawlError(link or self.url, f"HTTP {self.status} {self.reason}{tries}".replace("  ", " "))
