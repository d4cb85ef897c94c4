"""What an archive import reads (items), is asked to read (source specs) and did (the report)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from llm_engineering.application.tables import format_table
from llm_engineering.domain.documents import RawDocument

SourceFormat = Literal["auto", "medium", "linkedin", "substack", "rss", "atom", "folder"]
FORMATS: tuple[str, ...] = ("medium", "linkedin", "substack", "rss", "atom", "folder")
ItemStatus = Literal["imported", "updated", "unchanged", "skipped", "failed"]
STATUSES: tuple[ItemStatus, ...] = ("imported", "updated", "unchanged", "skipped", "failed")


class SourceSpec(BaseModel):
    """One thing to import: an export (zip or folder), a feed (file or http(s) URL) or a folder of notes."""

    path: str = Field(min_length=1, description="A zip, a folder, a feed file or an http(s) feed URL.")
    format: SourceFormat = "auto"
    site_url: str | None = Field(default=None, description="The public address of an export without one (Substack).")
    include_drafts: bool = False
    include_responses: bool = Field(default=False, description="Medium responses are skipped unless set.")


@dataclass
class Item:
    """One piece of writing read from a source: a document to store, a link to crawl, or a skip with its reason."""

    format: str
    origin: str  # the file (and row) it came from
    document: RawDocument | None = None
    crawl: str | None = None  # a summary-only feed item: crawl this link with the crawlers
    skipped: str | None = None
    failed: str | None = None  # why crawling `crawl` failed
    title: str | None = None


class ItemOutcome(BaseModel):
    format: str
    origin: str
    status: ItemStatus
    link: str | None = None
    category: str | None = None
    title: str | None = None
    reason: str | None = None


class ImportReport(BaseModel):
    """Every item of one import run with what happened to it, and notes (e.g. a feed that held summaries only)."""

    author_full_name: str
    sources: list[str] = Field(default_factory=list)
    outcomes: list[ItemOutcome] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def failures(self) -> list[ItemOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def added(self) -> int:
        """Documents inserted or changed by this run (0 on a re-import of the same sources)."""
        return sum(o.status in ("imported", "updated") for o in self.outcomes)

    def counts_by_format(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter] = {}
        for outcome in self.outcomes:
            table.setdefault(outcome.format, Counter())[outcome.status] += 1
        return {name: dict(counts) for name, counts in sorted(table.items())}

    def summary_table(self, max_listed: int = 3) -> str:
        """One row per format, one column per status; then each skip reason (with a few of its files), each
        failure and each note."""
        counts = self.counts_by_format()
        rows = [[name, *(c.get(s, 0) for s in STATUSES)] for name, c in counts.items()]
        totals = Counter(o.status for o in self.outcomes)
        rows.append(["total", *(totals.get(s, 0) for s in STATUSES)])
        lines = [format_table(["format", *STATUSES], rows)]
        reasons: dict[tuple[str, str], list[str]] = {}
        for outcome in self.outcomes:
            if outcome.status == "skipped":
                reasons.setdefault((outcome.format, outcome.reason or "?"), []).append(outcome.origin)
        for (name, reason), origins in reasons.items():
            shown = ", ".join(origins[:max_listed]) + (
                f" and {len(origins) - max_listed} more" if len(origins) > max_listed else ""
            )
            lines.append(f"SKIPPED {len(origins)} {name}: {reason} ({shown})")
        for failure in self.failures:
            lines.append(f"FAILED {failure.origin} {failure.link or ''}: {failure.reason}".replace("  ", " "))
        lines.extend(f"NOTE {note}" for note in self.notes)
        return "\n".join(lines)
