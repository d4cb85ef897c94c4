"""ZenML step: import an author's platform exports, feeds and notes folders (the ETL config's archives/feeds)."""

from typing import Annotated, Any

from zenml import log_metadata, step

from llm_engineering.application.sources.report import ImportReport, SourceSpec
from llm_engineering.domain.documents import UserDocument
from llm_engineering.wiring import get_container


@step
def import_archives(
    user: UserDocument, sources: list[dict[str, Any]], links: list[str] | None = None
) -> Annotated[ImportReport, "import_report"]:
    """Every source is read and checked before the first write (a bad file fails the step, nothing written).
    Pages also in `links` (crawled by this run) are left to the crawl."""
    specs = [SourceSpec.model_validate(source) for source in sources]
    importer = get_container().archive_importer()
    try:
        report = importer.import_for(user, specs, crawled_links=links or ())
    finally:
        importer.close()
    log_metadata(
        metadata={
            "sources": report.sources,
            "counts_by_format": report.counts_by_format(),
            "added": report.added(),
            "failures": [{"origin": f.origin, "link": f.link, "reason": f.reason} for f in report.failures],
            "notes": report.notes,
        }
    )
    return report
