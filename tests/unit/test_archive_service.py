"""ArchiveImporter orchestration with fakes of the ports (in addition to the real-warehouse tests): summary-only
feed items go to the crawler registry, a failing one is reported and the rest stored, feed URLs go to the page
fetcher, an item met twice in one run is stored once."""

from __future__ import annotations

import pytest

from llm_engineering.application.sources.report import SourceSpec
from llm_engineering.application.sources.service import ArchiveImporter
from llm_engineering.domain.documents import ArticleDocument, UserDocument
from llm_engineering.domain.errors import CrawlError, ImportFormatError
from llm_engineering.domain.pages import FetchedPage
from tests.fakes import FakeWarehouse
from tests.fixtures.archives import build
from tests.fixtures.archives import corpus as c


class FakeCrawler:
    platform = "blog"

    def crawl(self, link: str, author: UserDocument) -> ArticleDocument:
        if "gone" in link:
            raise CrawlError(link, "HTTP 404 Not Found")
        if "boom" in link:
            raise RuntimeError("parser bug")
        content = {"Title": "Crawled", "Subtitle": "", "Content": f"The whole text of {link}."}
        return ArticleDocument(
            author_id=author.id, author_full_name=author.full_name, platform="blog", link=link, content=content
        )


class FakeRegistry:
    def __init__(self) -> None:
        self.closed = False
        self.asked: list[str] = []

    def get_crawler(self, link: str) -> FakeCrawler:
        self.asked.append(link)
        return FakeCrawler()

    def platform_for(self, link: str) -> str:
        return "blog"

    def close(self) -> None:
        self.closed = True


class FakeFetcher:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.urls: list[str] = []
        self.closed = False

    def get(self, url: str, *, raise_for_status: bool = True) -> FetchedPage:
        self.urls.append(url)
        return FetchedPage(url=url, status=200, reason="OK", content=self.body)

    def close(self) -> None:
        self.closed = True


def _summary_feed(tmp_path, names):
    pieces = [c.Piece(n, "Ada Lovelace", n.title(), ["Summary."], f"https://ada.example.org/{n}") for n in names]
    feed = tmp_path / "feed.rss"
    feed.write_text(build.rss_feed(pieces, full=False, medium_footer=False))
    return feed


def test_summary_only_items_are_crawled_and_failures_reported(tmp_path):
    warehouse, registry = FakeWarehouse(), FakeRegistry()
    importer = ArchiveImporter(warehouse, crawlers=lambda: registry)
    feed = _summary_feed(tmp_path, ["first", "gone", "boom"])
    report = importer.import_sources([SourceSpec(path=str(feed))], "Ada Lovelace", show_progress=False)
    assert [o.status for o in report.outcomes] == ["imported", "failed", "failed"]
    assert "HTTP 404" in report.outcomes[1].reason and "RuntimeError: parser bug" in report.outcomes[2].reason
    assert registry.asked == [f"https://ada.example.org/{n}" for n in ("first", "gone", "boom")] and registry.closed
    assert list(warehouse.documents) == ["https://ada.example.org/first"] and not report.ok


def test_without_crawlers_summary_items_fail_with_a_reason(tmp_path):
    report = ArchiveImporter(FakeWarehouse()).import_sources(
        [SourceSpec(path=str(_summary_feed(tmp_path, ["one"])))], "Ada Lovelace", show_progress=False
    )
    assert report.outcomes[0].status == "failed" and "no crawler configured" in report.outcomes[0].reason


def test_feed_urls_go_through_the_fetcher(tmp_path):
    fetcher = FakeFetcher(build.rss_feed([c.LAGOON]).encode())
    warehouse = FakeWarehouse()
    importer = ArchiveImporter(warehouse, fetcher=fetcher)
    url = "https://medium.com/feed/@ines.carvalho"
    report = importer.import_sources([SourceSpec(path=url)], c.INES, show_progress=False)
    assert fetcher.urls == [url] and [o.status for o in report.outcomes] == ["imported"]
    importer.close()
    assert fetcher.closed
    with pytest.raises(ImportFormatError, match="a URL is read as a feed, not as a medium export"):
        importer.import_sources([SourceSpec(path=url, format="medium")], c.INES, show_progress=False)
    with pytest.raises(ImportFormatError, match="may not carry a user name or password") as caught:
        importer.import_sources([SourceSpec(path="https://ada:s3cret@blog.example.org/feed")], c.INES)
    assert "s3cret" not in str(caught.value) and fetcher.urls == [url]


def test_an_item_in_two_sources_is_stored_once_from_the_first(tmp_path):
    warehouse = FakeWarehouse()
    export = build.medium_export(tmp_path / "medium")
    feed = tmp_path / "ines.rss"
    feed.write_text(build.rss_feed([c.TIDE]))
    specs = [SourceSpec(path=str(export)), SourceSpec(path=str(feed))]
    report = ArchiveImporter(warehouse).import_sources(specs, c.INES, show_progress=False)
    rss = [o for o in report.outcomes if o.format == "rss"]
    assert rss[0].status == "skipped" and "the same link as" in rss[0].reason and "medium" in rss[0].reason
    assert warehouse.documents[c.TIDE.link].content["Subtitle"] == c.TIDE.subtitle  # the export's copy


def test_nothing_to_import_is_an_error():
    with pytest.raises(ImportFormatError, match="nothing to import"):
        ArchiveImporter(FakeWarehouse()).import_sources([], c.INES)


def test_pages_the_same_run_crawls_are_left_to_the_crawl(tmp_path):
    warehouse = FakeWarehouse()
    export = build.medium_export(tmp_path / "medium")
    specs = [SourceSpec(path=str(export))]
    author = UserDocument.from_full_name(c.INES)
    report = ArchiveImporter(warehouse).import_for(author, specs, False, crawled_links=[f"{c.TIDE.link}?source=x"])
    tide = next(o for o in report.outcomes if o.link == c.TIDE.link)
    assert tide.status == "skipped" and "the crawl stores it" in tide.reason
    assert list(warehouse.documents) == [c.SOURDOUGH.link]


def test_relative_links_of_a_fetched_feed_resolve_against_its_url():
    feed = build.rss_feed([c.Piece("r", c.INES, "Relative", ["A post with a relative link."], "/posts/relative")])
    warehouse = FakeWarehouse()
    importer = ArchiveImporter(warehouse, fetcher=FakeFetcher(feed.encode()))
    report = importer.import_sources([SourceSpec(path="https://blog.example.org/feed.xml")], c.INES, False)
    assert [o.link for o in report.outcomes] == ["https://blog.example.org/posts/relative"]


def test_a_changed_body_is_the_only_document_the_feature_pipeline_redoes(tmp_path):
    from llm_engineering.application.preprocessing.features import FeatureEngineering
    from tests.fakes import FakeVectorStore, HashingEncoder

    warehouse = FakeWarehouse()
    features = FeatureEngineering(warehouse, FakeVectorStore(), HashingEncoder(), show_progress=False)
    export = build.substack_export(tmp_path / "ss")
    spec = [SourceSpec(path=str(export), site_url=c.TOMASZ_SITE)]
    ArchiveImporter(warehouse).import_sources(spec, c.TOMASZ, show_progress=False)
    first = features.run("all")
    assert (first.new, first.changed, first.unchanged) == (2, 0, 0)
    body = next((export / "posts").glob("*bridges*"))
    body.write_text(body.read_text().replace("A steel bridge", "Every steel bridge"))
    report = ArchiveImporter(warehouse).import_sources(spec, c.TOMASZ, show_progress=False)
    assert sorted(o.status for o in report.outcomes) == ["skipped", "unchanged", "updated"]
    second = features.run("all")
    assert (second.new, second.changed, second.unchanged) == (0, 1, 1)
