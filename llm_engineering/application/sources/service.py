"""Import platform exports, feeds and folders of notes into the warehouse, beside the crawlers and the JSON import.

All-or-nothing per run for the input: every source is read and checked (formats, zip limits, CSV columns, HTML
bodies, feed XML) before the first write, so a bad file anywhere leaves the warehouse untouched and the error
names the file and the row. Fetching is per item with a report: a summary-only feed's items are crawled one by
one, and one that fails is reported as failed while the others are stored (the ETL's rule for links).

Documents are the crawlers' (same classes, extraction, normalised links) and are stored with the warehouse's
upsert by link, so a second import, a later crawl of the same page or the JSON export of it adds nothing; a
changed body updates its document in place (same id: the feature pipeline re-embeds that one only). An item met
twice in one run (the same post in a Medium export and in its RSS feed) is stored once, from the first source
given; the later copy is reported as skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from loguru import logger
from tqdm.auto import tqdm

from llm_engineering.application.crawlers.links import normalize_link
from llm_engineering.application.ports import CrawlerRegistry, PageFetcher, WarehouseRepository
from llm_engineering.application.sources.archive import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    SingleFileTree,
    ZipTree,
    open_tree,
)
from llm_engineering.application.sources.common import ReadContext
from llm_engineering.application.sources.detect import detect_export, export_root, is_url
from llm_engineering.application.sources.feeds import read_feed
from llm_engineering.application.sources.linkedin import read_linkedin
from llm_engineering.application.sources.medium import read_medium
from llm_engineering.application.sources.notes import read_notes
from llm_engineering.application.sources.report import ImportReport, Item, ItemOutcome, SourceSpec
from llm_engineering.application.sources.substack import read_substack
from llm_engineering.domain.documents import UserDocument
from llm_engineering.domain.errors import CrawlError, ImportFormatError
from llm_engineering.domain.redaction import redact_credentials
from llm_engineering.domain.types import UpsertOutcome

EXPORT_READERS = {"medium": read_medium, "linkedin": read_linkedin, "substack": read_substack}
STATUS_OF = {UpsertOutcome.INSERTED: "imported", UpsertOutcome.UPDATED: "updated", UpsertOutcome.UNCHANGED: "unchanged"}


def _folder_name(path: Path) -> str:
    """What `note:` links start with: the folder's name; a zip's stem (or the one folder it wraps, so a zipped
    folder gives its notes the links the folder gives them); for a single note, its own folder's name."""
    if path.is_dir():
        return path.resolve().name
    if path.suffix.lower() == ".zip":
        return path.stem
    return path.resolve().parent.name


class ArchiveImporter:
    """Reads sources with the format readers, crawls what feeds only summarise, and upserts the documents.

    `fetcher` (feed URLs, through the crawlers' network guard) and `crawlers` (a factory: a crawler batch for
    summary-only feed items) are only used when a source needs them."""

    def __init__(
        self,
        warehouse: WarehouseRepository,
        fetcher: PageFetcher | None = None,
        crawlers: Callable[[], CrawlerRegistry] | None = None,
        limits: ArchiveLimits = DEFAULT_LIMITS,
    ) -> None:
        self.warehouse = warehouse
        self.fetcher = fetcher
        self.crawlers = crawlers
        self.limits = limits

    def close(self) -> None:
        if self.fetcher is not None:
            self.fetcher.close()

    # --- the whole run ---------------------------------------------------------------------------------------
    def import_sources(
        self, specs: Sequence[SourceSpec], author_full_name: str, show_progress: bool = True
    ) -> ImportReport:
        """Import for an author by name; the author is created (with the first write) when new."""
        author = self.warehouse.find_user(author_full_name) or UserDocument.from_full_name(author_full_name)
        return self.import_for(author, specs, show_progress)

    def import_for(
        self,
        author: UserDocument,
        specs: Sequence[SourceSpec],
        show_progress: bool = True,
        crawled_links: Iterable[str] = (),
    ) -> ImportReport:
        """`crawled_links`: links the same run crawls (an ETL config's `links:`); archive copies of those pages are
        skipped, so the two never overwrite each other run after run."""
        if not specs:
            raise ImportFormatError("<no path>", "nothing to import: give at least one archive, feed or folder")
        report = ImportReport(author_full_name=author.full_name, sources=[s.path for s in specs])
        items: list[Item] = []
        for spec in specs:  # read everything first: a bad file stops the run before any write
            ctx = ReadContext(author=author, spec=spec, show_progress=show_progress)
            read, notes = self.read_source(spec, ctx)
            items += read
            report.notes += notes
        self._crawl_summaries(items, author, report, show_progress)
        self.warehouse.upsert_user(author)
        crawled = {normalize_link(link) for link in crawled_links}
        seen: dict[str, str] = {}
        for item in tqdm(items, desc=f"Importing for {author.full_name}", unit="item", disable=not show_progress):
            report.outcomes.append(self._store(item, seen, crawled))
        for outcome in report.outcomes:
            if outcome.status == "failed":
                logger.warning(f"Failed: {outcome.origin} {outcome.link}: {outcome.reason}")
        return report

    # --- reading ---------------------------------------------------------------------------------------------
    def read_source(self, spec: SourceSpec, ctx: ReadContext) -> tuple[list[Item], list[str]]:
        """(items, notes) of one source. Raises `ImportFormatError` (naming the file and row) or `CrawlError`
        (a feed URL that cannot be fetched); writes nothing."""
        path = spec.path.strip()
        if is_url(path):
            if spec.format not in ("auto", "rss", "atom"):
                raise ImportFormatError(path, f"a URL is read as a feed, not as a {spec.format} export")
            if urlsplit(path).username is not None:  # it would be stored in the report and ZenML's run record
                raise ImportFormatError(
                    redact_credentials(path), "a feed URL may not carry a user name or password; remove them"
                )
            if self.fetcher is None:
                raise ImportFormatError(path, "feed URLs need a page fetcher (none configured)")
            page = self.fetcher.get(path)
            _, items, notes = read_feed(page.content, path, ctx, spec.format)
            return items, notes
        tree = open_tree(Path(path).expanduser(), self.limits)
        try:
            root = tree if isinstance(tree, SingleFileTree) else tree.subtree(export_root(tree))
            fmt = spec.format if spec.format != "auto" else detect_export(root)
            if fmt in ("feed", "rss", "atom"):
                if not isinstance(tree, SingleFileTree):
                    raise ImportFormatError(tree.location, f"a {fmt} source is one feed file or URL, not a folder")
                _, items, notes = read_feed(tree.read_bytes(tree.files()[0]), path, ctx, spec.format)
                return items, notes
            if fmt == "folder":
                wrapper = export_root(tree) if isinstance(tree, ZipTree) else ""
                notes_tree = tree.subtree(wrapper) if wrapper else tree
                return read_notes(notes_tree, ctx, wrapper or _folder_name(Path(path).expanduser())), []
            return EXPORT_READERS[fmt](root, ctx), []
        finally:
            close = getattr(tree, "close", None)
            if close is not None:
                close()

    def _crawl_summaries(self, items: list[Item], author: UserDocument, report: ImportReport, show: bool) -> None:
        todo = [item for item in items if item.crawl]
        if not todo:
            return
        if self.crawlers is None:
            for item in todo:
                item.failed = "no crawler configured to fetch the whole text"
            return
        registry = self.crawlers()
        try:
            for item in tqdm(todo, desc="Crawling summary-only feed items", unit="link", disable=not show):
                link = item.crawl or ""
                try:
                    item.document = registry.get_crawler(link).crawl(link, author)
                except CrawlError as exc:
                    item.failed = exc.reason
                except Exception as exc:  # one item's crawler bug must not stop the others
                    logger.exception(f"Unexpected error while crawling {link}")
                    item.failed = f"unexpected {type(exc).__name__}: {exc}"
        finally:
            registry.close()

    # --- writing ---------------------------------------------------------------------------------------------
    def _store(self, item: Item, seen: dict[str, str], crawled: set[str]) -> ItemOutcome:
        if item.failed:
            return ItemOutcome(
                format=item.format, origin=item.origin, status="failed", link=item.crawl, title=item.title,
                reason=f"crawling the item's link (the feed holds a summary only) failed: {item.failed}",
            )  # fmt: skip
        if item.document is None:
            return ItemOutcome(
                format=item.format, origin=item.origin, status="skipped", title=item.title, reason=item.skipped
            )
        document = item.document
        if document.link in crawled:
            return ItemOutcome(
                format=item.format, origin=item.origin, status="skipped", link=document.link, title=item.title,
                reason="also among the run's links: the crawl stores it",
            )  # fmt: skip
        if document.link in seen:
            return ItemOutcome(
                format=item.format, origin=item.origin, status="skipped", link=document.link, title=item.title,
                reason=f"the same link as {seen[document.link]} (stored once, from the first source)",
            )  # fmt: skip
        seen[document.link] = item.origin
        outcome = self.warehouse.upsert_document(document)
        return ItemOutcome(
            format=item.format, origin=item.origin, status=STATUS_OF[outcome], link=document.link,
            category=document.category.value, title=item.title or document.title,
        )  # fmt: skip
