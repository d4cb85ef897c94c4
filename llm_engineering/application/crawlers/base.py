"""The crawler interface every platform crawler implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from llm_engineering.domain.documents import RawDocument, UserDocument
from llm_engineering.domain.types import Platform


class Crawler(ABC):
    """Turns one link into one raw document of the crawler's category, or raises `CrawlError`.

    A crawler never writes to the warehouse: the ETL service decides what to store (by content hash).
    """

    platform: Platform

    @abstractmethod
    def crawl(self, link: str, author: UserDocument) -> RawDocument:
        """Fetch `link` and return its document attributed to `author`. Raises `CrawlError` on failure."""

    def close(self) -> None:  # noqa: B027 - optional hook: browsers and temporary folders
        """Release resources (browser sessions); called once after a batch of links."""
