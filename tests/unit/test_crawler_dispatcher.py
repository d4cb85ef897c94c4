"""Routing links to crawlers: by domain (and subdomains), repositories by URL or local path, default = blog."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_engineering.application.crawlers.article import ArticleCrawler, SubstackCrawler
from llm_engineering.application.crawlers.base import Crawler
from llm_engineering.application.crawlers.dispatcher import CrawlerDispatcher, domain_matcher
from llm_engineering.application.crawlers.github import GithubCrawler, clone_source
from llm_engineering.application.crawlers.linkedin import LinkedInArticleCrawler, LinkedInCrawler
from llm_engineering.application.crawlers.medium import MediumCrawler
from llm_engineering.domain.errors import CrawlError
from llm_engineering.domain.types import Platform
from llm_engineering.settings import Settings
from llm_engineering.wiring import Container


@pytest.fixture
def dispatcher(tmp_path: Path):
    value = Container(Settings(data_dir=tmp_path / "data")).crawler_dispatcher()
    yield value
    value.close()


@pytest.mark.parametrize(
    ("link", "platform", "crawler_class"),
    [
        ("https://medium.com/@ada/building-an-llm-twin-123", Platform.MEDIUM, MediumCrawler),
        ("https://ada.medium.com/some-post-456", Platform.MEDIUM, MediumCrawler),
        ("https://www.medium.com/p/789", Platform.MEDIUM, MediumCrawler),
        ("https://ada.substack.com/p/notes-on-retrieval", Platform.SUBSTACK, SubstackCrawler),
        ("https://substack.com/@ada/p-123", Platform.SUBSTACK, SubstackCrawler),
        ("https://www.linkedin.com/posts/ada_llm-activity-123", Platform.LINKEDIN, LinkedInCrawler),
        ("https://linkedin.com/feed/update/urn:li:activity:1/", Platform.LINKEDIN, LinkedInCrawler),
        (
            "https://www.linkedin.com/pulse/5-trends-from-nutrition-2025-dylan-bailey",
            Platform.LINKEDIN,
            LinkedInArticleCrawler,
        ),
        (
            "https://de.linkedin.com/pulse/how-can-ai-change-financial-services",
            Platform.LINKEDIN,
            LinkedInArticleCrawler,
        ),
        ("https://github.com/ada/llm-twin", Platform.GITHUB, GithubCrawler),
        ("https://github.com/ada/llm-twin/tree/main/src", Platform.GITHUB, GithubCrawler),
        ("git@github.com:ada/llm-twin.git", Platform.GITHUB, GithubCrawler),
        ("file:///srv/repos/llm-twin", Platform.GITHUB, GithubCrawler),
        ("/srv/repos/llm-twin", Platform.GITHUB, GithubCrawler),
        ("./llm-twin", Platform.GITHUB, GithubCrawler),
        ("https://blog.example.org/2026/11/python-tips", Platform.BLOG, ArticleCrawler),
        ("http://127.0.0.1:8000/blog_post.html", Platform.BLOG, ArticleCrawler),
        ("HTTPS://Example.COM/Post", Platform.BLOG, ArticleCrawler),
    ],
)
def test_routes_by_link(dispatcher, link, platform, crawler_class):
    assert dispatcher.platform_for(link) == platform
    crawler = dispatcher.get_crawler(link)
    assert type(crawler) is crawler_class
    assert crawler.platform == platform


def test_lookalike_domains_are_not_claimed(dispatcher):
    assert dispatcher.platform_for("https://notmedium.com/post") == Platform.BLOG
    assert dispatcher.platform_for("https://medium.com.evil.example/post") == Platform.BLOG
    assert dispatcher.platform_for("https://mysubstack.com/p/x") == Platform.BLOG


def test_a_local_directory_without_prefix_is_a_repository(dispatcher, tmp_path, monkeypatch):
    (tmp_path / "myrepo").mkdir()
    monkeypatch.chdir(tmp_path)
    assert dispatcher.platform_for("myrepo") == Platform.GITHUB


def test_crawlers_are_created_once_and_reused(dispatcher):
    first = dispatcher.get_crawler("https://medium.com/@ada/a")
    assert dispatcher.get_crawler("https://ada.medium.com/b") is first
    blog = dispatcher.get_crawler("https://a.example/x")
    assert dispatcher.get_crawler("https://b.example/y") is blog


def test_browser_crawlers_share_one_lazy_browser(dispatcher):
    medium = dispatcher.get_crawler("https://medium.com/@ada/a")
    linkedin = dispatcher.get_crawler("https://www.linkedin.com/posts/x")
    pulse = dispatcher.get_crawler("https://www.linkedin.com/pulse/x")
    assert medium.browser is linkedin.browser is pulse.browser
    assert not medium.browser.started  # building crawlers never starts Chromium


def test_empty_and_unsupported_links_are_crawl_errors(dispatcher):
    with pytest.raises(CrawlError, match="empty link"):
        dispatcher.platform_for("   ")
    with pytest.raises(CrawlError, match="unsupported link scheme 'ftp'") as info:
        dispatcher.get_crawler("ftp://files.example/x")
    assert info.value.link == "ftp://files.example/x"


class _Recorder(Crawler):
    platform = Platform.BLOG
    closed = 0

    def crawl(self, link, author):  # pragma: no cover - routing only
        raise NotImplementedError

    def close(self) -> None:
        type(self).closed += 1


def test_register_with_a_domain_string_or_callable_and_close_every_crawler():
    created = []

    def factory():
        created.append(_Recorder())
        return created[-1]

    _Recorder.closed = 0
    dispatcher = CrawlerDispatcher(default=factory)
    dispatcher.register("example.com", factory, Platform.SUBSTACK)
    dispatcher.register(lambda link: link.endswith(".git"), factory, Platform.GITHUB)
    assert dispatcher.platform_for("https://sub.example.com/x") == Platform.SUBSTACK
    assert dispatcher.platform_for("https://gitlab.example/a/b.git") == Platform.GITHUB
    assert dispatcher.platform_for("https://other.org/") == Platform.BLOG
    assert not created  # platform_for never builds a crawler
    for link in ("https://sub.example.com/x", "https://gitlab.example/a/b.git", "https://other.org/"):
        dispatcher.get_crawler(link)
    assert len(created) == 3
    dispatcher.close()
    dispatcher.close()  # idempotent
    assert _Recorder.closed == 3


def test_platform_comes_from_the_crawler_class_or_the_built_crawler_when_not_given():
    dispatcher = CrawlerDispatcher(default=_Recorder)
    dispatcher.register("gh.example", GithubCrawler)  # a class: its `platform` attribute
    dispatcher.register(domain_matcher("rec.example"), lambda: _Recorder())  # a lambda: ask the crawler
    assert dispatcher.platform_for("https://gh.example/a/b") == Platform.GITHUB
    assert dispatcher.platform_for("https://rec.example/a") == Platform.BLOG


@pytest.mark.parametrize(
    ("link", "source", "name"),
    [
        ("https://github.com/ada/llm-twin", "https://github.com/ada/llm-twin.git", "llm-twin"),
        ("https://github.com/ada/llm-twin.git", "https://github.com/ada/llm-twin.git", "llm-twin"),
        ("https://github.com/ada/llm-twin/tree/main/docs", "https://github.com/ada/llm-twin.git", "llm-twin"),
        ("git@github.com:ada/llm-twin.git", "git@github.com:ada/llm-twin.git", "llm-twin"),
        ("https://gitlab.com/ada/tools.git", "https://gitlab.com/ada/tools.git", "tools"),
        ("file:///srv/repos/my%20repo", "file:///srv/repos/my%20repo", "my repo"),
        ("/srv/repos/plain", "file:///srv/repos/plain", "plain"),
    ],
)
def test_clone_source(link, source, name):
    assert clone_source(link) == (source, name)


def test_clone_source_rejects_a_github_link_without_a_repository():
    with pytest.raises(ValueError, match="OWNER/REPO"):
        clone_source("https://github.com/ada")
