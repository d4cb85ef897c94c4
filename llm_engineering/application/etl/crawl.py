"""Crawl a list of links for one author and store what changed. One link's failure never stops the others."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Literal

from loguru import logger
from pydantic import AfterValidator, BaseModel, Field
from tqdm.auto import tqdm

from llm_engineering.application.ports import CrawlerRegistry, WarehouseRepository
from llm_engineering.application.tables import format_table
from llm_engineering.domain.documents import UserDocument
from llm_engineering.domain.errors import CrawlError
from llm_engineering.domain.redaction import redact_credentials

LinkStatus = Literal["inserted", "updated", "unchanged", "failed"]


class LinkOutcome(BaseModel):
    """One link's outcome. Credentials in the link or the error are masked: the report is printed, stored as a
    ZenML artifact and logged."""

    link: Annotated[str, AfterValidator(redact_credentials)]
    platform: str
    status: LinkStatus
    category: str | None = None
    error: Annotated[str | None, AfterValidator(lambda text: redact_credentials(text) if text else text)] = None


class CrawlReport(BaseModel):
    """What one ETL run did, link by link."""

    author_full_name: str
    outcomes: list[LinkOutcome] = Field(default_factory=list)

    @property
    def failures(self) -> list[LinkOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def counts_by_status(self) -> dict[str, int]:
        return dict(Counter(o.status for o in self.outcomes))

    def counts_by_platform(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter] = {}
        for outcome in self.outcomes:
            table.setdefault(outcome.platform, Counter())[outcome.status] += 1
        return {platform: dict(counts) for platform, counts in sorted(table.items())}

    def summary_table(self) -> str:
        """A fixed-width table: one row per platform, one column per status, and the failures below."""
        statuses: list[LinkStatus] = ["inserted", "updated", "unchanged", "failed"]
        rows = [
            [platform, *(counts.get(s, 0) for s in statuses)] for platform, counts in self.counts_by_platform().items()
        ]
        totals = self.counts_by_status()
        rows.append(["total", *(totals.get(s, 0) for s in statuses)])
        lines = [format_table(["platform", *statuses], rows)]
        for failure in self.failures:
            lines.append(f"FAILED {failure.link}: {failure.error}")
        return "\n".join(lines)


def unique_links(links: Iterable[str]) -> list[str]:
    """Strip and de-duplicate links, keeping the config's order."""
    seen: dict[str, None] = {}
    for link in links:
        cleaned = (link or "").strip()
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


def crawl_author_links(
    author: UserDocument,
    links: Iterable[str],
    crawlers: CrawlerRegistry,
    warehouse: WarehouseRepository,
    show_progress: bool = True,
) -> CrawlReport:
    """Crawl each link, store new or changed documents by content hash, and report every outcome."""
    report = CrawlReport(author_full_name=author.full_name)
    todo = unique_links(links)
    try:
        for link in tqdm(todo, desc=f"Crawling links of {author.full_name}", unit="link", disable=not show_progress):
            report.outcomes.append(_crawl_one(link, author, crawlers, warehouse))
    finally:
        crawlers.close()
    return report


def _crawl_one(
    link: str, author: UserDocument, crawlers: CrawlerRegistry, warehouse: WarehouseRepository
) -> LinkOutcome:
    try:
        platform = str(crawlers.platform_for(link))
    except CrawlError as exc:
        logger.warning(f"Skipping {redact_credentials(link)}: {exc.reason}")
        return LinkOutcome(link=link, platform="unknown", status="failed", error=exc.reason)
    try:
        document = crawlers.get_crawler(link).crawl(link, author)
        outcome = warehouse.upsert_document(document)
    except CrawlError as exc:
        logger.warning(f"Failed to crawl {redact_credentials(link)}: {exc.reason}")
        return LinkOutcome(link=link, platform=platform, status="failed", error=exc.reason)
    except Exception as exc:  # one broken link (or crawler bug) must not stop the others
        logger.exception(f"Unexpected error while crawling {redact_credentials(link)}")
        return LinkOutcome(
            link=link, platform=platform, status="failed", error=f"unexpected {type(exc).__name__}: {exc}"
        )
    logger.info(f"{outcome.value:>9} {document.category.value[:-1]} {redact_credentials(link)}")
    return LinkOutcome(link=link, platform=platform, status=outcome.value, category=document.category.value)
