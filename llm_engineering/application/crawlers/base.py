"""The crawler interface every platform crawler implements, and the settings crawlers read."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, TypeVar

from pydantic import BaseModel, Field, SecretStr

from llm_engineering.application.crawlers.links import normalize_link
from llm_engineering.domain.documents import RawDocument, UserDocument
from llm_engineering.domain.types import Platform

DocumentT = TypeVar("DocumentT", bound=RawDocument)


class CrawlerConfig(BaseModel):
    """What crawlers need to know (the composition root fills it from the CRAWLER_* / LINKEDIN_* settings)."""

    timeout_s: float = Field(default=20.0, gt=0, description="Page load / HTTP timeout per link.")
    scroll_limit: int = Field(default=5, ge=0, description="Scroll rounds for lazy-loaded pages.")
    github_max_file_bytes: int = Field(default=200_000, gt=0)
    linkedin_username: str | None = None
    linkedin_password: SecretStr | None = None
    local_repository_roots: list[str] = Field(
        default_factory=list,
        description="Folders local git repositories may be cloned from (empty: anywhere this user can read).",
    )


class Crawler(ABC):
    """Turns one link into one raw document of the crawler's category, or raises `CrawlError`.

    A crawler never writes to the warehouse: the ETL service decides what to store (by content hash).
    """

    platform: Platform

    @abstractmethod
    def crawl(self, link: str, author: UserDocument) -> RawDocument:
        """Fetch `link` and return its document attributed to `author`. Raises `CrawlError` on failure."""

    def close(self) -> None:  # noqa: B027 - optional hook: temporary folders
        """Release what the crawler holds itself; shared browsers and HTTP sessions are closed by the dispatcher."""

    def document(self, cls: type[DocumentT], link: str, author: UserDocument, content: dict, **extra: Any) -> DocumentT:
        """The crawled document, attributed to `author` and labelled with this crawler's platform. Its link is
        normalised (`links.normalize_link`), so an archive import of the same page updates it instead of adding a
        second document."""
        return cls(
            author_id=author.id,
            author_full_name=author.full_name,
            platform=self.platform.value,
            link=normalize_link(link),
            content=content,
            **extra,
        )
