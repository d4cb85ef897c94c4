from typing import Any

from zenml import pipeline

from steps.etl import crawl_links, get_or_create_user, import_archives


@pipeline
def digital_data_etl(user_full_name: str, links: list[str], sources: list[dict[str, Any]] | None = None) -> None:
    """Import one author's archives and feeds (`sources`, when given), then crawl their links, into the raw data
    warehouse. A page that is both in an archive and among the links is left to the crawl (one document, and
    re-runs do not flip it between the two versions)."""
    user = get_or_create_user(user_full_name)
    after = []
    if sources:
        after = [import_archives(user=user, sources=sources, links=links)]
    if links:
        crawl_links(user=user, links=links, after=after)
