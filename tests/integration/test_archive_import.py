"""Archive import into the real embedded warehouse (nx-27017 over TCP): the issue's "done when" on writing this
project has never seen (two authors, every format), idempotency against re-import, crawl and JSON export,
summary-only feeds crawled from a local server, the network guard, all-or-nothing on bad input, and the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from llm_engineering.application.crawlers.extraction import text_key
from llm_engineering.application.etl.crawl import crawl_author_links
from llm_engineering.application.sources.report import SourceSpec
from llm_engineering.application.warehouse.transfer import export_warehouse, import_warehouse
from llm_engineering.domain.errors import CrawlError, ImportFormatError
from llm_engineering.domain.types import DataCategory
from tests.fixtures.archives import build
from tests.fixtures.archives import corpus as c

PROJECT_ROOT = Path(__file__).parents[2]


@pytest.fixture
def container(settings):
    from llm_engineering.wiring import get_container

    return get_container(settings)


def _import(container, author: str, paths, **options):
    importer = container.archive_importer()
    try:
        specs = [SourceSpec(path=str(p), **options) for p in paths]
        return importer.import_sources(specs, author, show_progress=False)
    finally:
        importer.close()


def _documents(warehouse) -> list:
    return [d for category in (DataCategory.ARTICLES, DataCategory.POSTS) for d in warehouse.find_documents(category)]


def _sentence_recall(piece: c.Piece, text: str) -> float:
    body = " ".join(re.findall(r"\w+", text_key(text)))
    sentences = piece.sentences()
    found = sum(" ".join(re.findall(r"\w+", text_key(s))) in body for s in sentences)
    return found / len(sentences)


def test_two_authors_every_format_lands_once_and_reimport_adds_nothing(container, warehouse, tmp_path):
    paths = build.build_all(tmp_path / "archives", zipped=True)
    first = {author: _import(container, author, ps, site_url=c.TOMASZ_SITE) for author, ps in paths.items()}
    for report in first.values():
        assert report.ok, report.summary_table()

    docs = _documents(warehouse)
    by_link = {d.link: d for d in docs}
    assert len(by_link) == len(docs) == len(c.EXPECTED)  # each published item once (the Tide story is in 2 sources)
    recalls = []
    for piece in c.EXPECTED:
        doc = by_link[piece.link]
        assert doc.author_full_name == piece.author
        assert doc.title == piece.title
        assert doc.category.value == ("posts" if piece.kind == "post" else "articles")
        recalls.append(_sentence_recall(piece, doc.content["Content"]))
    assert min(recalls) >= 0.98, recalls
    stored_text = " ".join(d.content["Content"] for d in docs)
    for piece in c.NOT_STORED:
        assert piece.link not in by_link
        assert piece.paragraphs[0][:40] not in stored_text, piece.key
    users = {u.full_name for u in warehouse.list_users()}
    assert users == {c.INES, c.TOMASZ}

    ines = first[c.INES]
    counts = ines.counts_by_format()
    assert counts["medium"] == {"imported": 2, "skipped": 2}
    assert counts["linkedin"] == {"imported": 3, "skipped": 2}
    assert counts["rss"] == {"imported": 1, "skipped": 1}  # the Tide story came first from the Medium export
    table = ines.summary_table()
    assert "draft (--include-drafts imports drafts)" in table and "the same link as" in table

    second = {author: _import(container, author, ps, site_url=c.TOMASZ_SITE) for author, ps in paths.items()}
    assert all(r.added() == 0 for r in second.values())
    assert {o.status for r in second.values() for o in r.outcomes} <= {"unchanged", "skipped"}
    assert len(_documents(warehouse)) == len(c.EXPECTED)


def test_changed_body_updates_in_place_and_json_export_round_trips(container, warehouse, tmp_path):
    export = build.substack_export(tmp_path / "ss")
    _import(container, c.TOMASZ, [export], site_url=c.TOMASZ_SITE)
    before = {d.link: d for d in _documents(warehouse)}
    body = next((export / "posts").glob("*bridges*"))
    body.write_text(body.read_text().replace("A steel bridge", "Every steel bridge"))
    report = _import(container, c.TOMASZ, [export], site_url=c.TOMASZ_SITE)
    assert sorted(o.status for o in report.outcomes) == ["skipped", "unchanged", "updated"]
    after = {d.link: d for d in _documents(warehouse)}
    assert after[c.BRIDGES.link].id == before[c.BRIDGES.link].id  # same id: only this one is re-embedded
    assert after[c.BRIDGES.link].content_hash != before[c.BRIDGES.link].content_hash
    assert after[c.CABLES.link].content_hash == before[c.CABLES.link].content_hash

    folder = tmp_path / "json"
    export_warehouse(warehouse, folder)
    again = import_warehouse(warehouse, folder, show_progress=False)
    assert again.counts["articles"] == {"unchanged": 2}
    assert len(_documents(warehouse)) == 2


def test_import_then_crawl_of_the_same_page_is_one_document(container, warehouse, fixture_server, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    link = f"{fixture_server}/blog_post.html"
    (notes / "post.md").write_text(
        f"---\ntitle: My draft of the post\ncanonical_url: {link}?utm_source=notes\n---\n\nFirst words.\n"
    )
    _import(container, "Ada Lovelace", [notes])
    author = warehouse.find_user("Ada Lovelace")
    report = crawl_author_links(author, [f"{link}#top"], container.crawler_dispatcher(), warehouse, show_progress=False)
    assert [o.status for o in report.outcomes] == ["updated"]
    assert [d.link for d in _documents(warehouse)] == [link]


def test_summary_only_feed_items_are_crawled_and_a_failing_one_is_reported(
    container, warehouse, fixture_server, tmp_path
):
    pages = [
        c.Piece("a", "Ada Lovelace", "A blog post", ["First."], f"{fixture_server}/blog_post.html"),
        c.Piece("b", "Ada Lovelace", "Gone", ["Second."], f"{fixture_server}/does_not_exist.html"),
    ]
    feed = tmp_path / "summaries.rss"
    feed.write_text(build.rss_feed(pages, full=False, medium_footer=False))
    report = _import(container, "Ada Lovelace", [feed])
    assert [o.status for o in report.outcomes] == ["imported", "failed"]
    assert "HTTP 404" in report.outcomes[1].reason and "summary" in report.notes[0]
    assert "FAILED" in report.summary_table()
    (doc,) = _documents(warehouse)
    assert doc.link == pages[0].link and len(doc.content["Content"]) > 200  # the whole page, not the summary


def test_feed_url_goes_through_the_network_guard(settings, warehouse, tmp_path):
    from bench.common import serve_directory
    from llm_engineering.wiring import get_container

    (tmp_path / "feed.rss").write_text(build.rss_feed([c.LAGOON]))
    with serve_directory(tmp_path) as base:
        url = f"{base}/feed.rss"
        report = _import(get_container(settings), c.INES, [url])
        assert [o.status for o in report.outcomes] == ["imported"]
        guarded = get_container(settings.model_copy(update={"crawler_allowed_networks": "", "crawler_max_retries": 0}))
        with pytest.raises(CrawlError, match="CRAWLER_ALLOW"):
            _import(guarded, "Someone Else", [url])
    assert warehouse.find_user("Someone Else") is None


def test_bad_input_anywhere_writes_nothing(container, warehouse, tmp_path):
    good = build.medium_export(tmp_path / "medium")
    bad = tmp_path / "linkedin.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("Shares.csv", "Date,Link\n2024-01-01,https://www.linkedin.com/feed/update/urn:li:share:1\n")
    with pytest.raises(ImportFormatError, match=r"linkedin\.zip!Shares\.csv: wrong columns"):
        _import(container, c.INES, [good, bad])
    assert _documents(warehouse) == [] and warehouse.list_users() == []


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(settings.data_dir), "MONGODB_URI": settings.mongodb_uri,
           "MONGODB_DATABASE": settings.mongodb_database, "MONGODB_EMBEDDED": "false"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "tools.import_archive", "--no-progress", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_summary_and_exit_codes(settings, warehouse, tmp_path):
    export = build.linkedin_export(tmp_path / "li")
    ok = _cli(settings, "--path", str(export), "--author", c.INES)
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"linkedin\s+3\s+0\s+0\s+2\s+0", ok.stdout), ok.stdout
    assert "reshare without commentary" in ok.stdout
    (export / "Shares.csv").write_text("not,the,columns\n")
    bad = _cli(settings, "--path", str(export), "--author", c.INES)
    assert bad.returncode == 1
    assert "Shares.csv: wrong columns" in bad.stderr and "Nothing was written" in bad.stderr
