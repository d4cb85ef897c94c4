from typing import Annotated

from zenml import log_metadata, step

from llm_engineering.application.etl.crawl import CrawlReport, crawl_author_links
from llm_engineering.domain.documents import UserDocument
from llm_engineering.wiring import get_container


@step
def crawl_links(user: UserDocument, links: list[str]) -> Annotated[CrawlReport, "crawl_report"]:
    container = get_container()
    report = crawl_author_links(user, links, container.crawler_dispatcher(), container.warehouse)
    log_metadata(
        metadata={
            "links": len(report.outcomes),
            "counts_by_status": report.counts_by_status(),
            "counts_by_platform": report.counts_by_platform(),
            "failures": [{"link": f.link, "reason": f.error} for f in report.failures],
        }
    )
    return report
