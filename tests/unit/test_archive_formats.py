"""Archive import, reading side: each format, format detection, link normalisation and every kind of bad input.

Reading writes nothing (the warehouse is never touched here; tests/integration/test_archive_import.py imports
into the real embedded warehouse). The exports are built by tests/fixtures/archives/build.py.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from llm_engineering.application.crawlers.extraction import repeats_body
from llm_engineering.application.crawlers.links import normalize_link
from llm_engineering.application.sources.archive import ArchiveLimits
from llm_engineering.application.sources.common import ReadContext
from llm_engineering.application.sources.report import SourceSpec
from llm_engineering.application.sources.service import ArchiveImporter
from llm_engineering.domain.documents import UserDocument
from llm_engineering.domain.errors import ImportFormatError
from tests.fixtures.archives import build
from tests.fixtures.archives import corpus as c


def read(path: Path | str, author: str = c.INES, limits: ArchiveLimits | None = None, **options):
    spec = SourceSpec(path=str(path), **options)
    importer = ArchiveImporter(warehouse=None, limits=limits or ArchiveLimits())  # type: ignore[arg-type]
    items, notes = importer.read_source(spec, ReadContext(UserDocument.from_full_name(author), spec))
    return items, notes


def stored(items):
    return {i.document.link: i.document for i in items if i.document is not None}


def skipped(items):
    return {i.origin.rsplit("/", 1)[-1]: i.skipped for i in items if i.skipped}


# --- formats -------------------------------------------------------------------------------------------------------
def test_medium_export_posts_drafts_and_responses(tmp_path):
    export = build.medium_export(tmp_path / "medium")
    items, _ = read(export)
    docs = stored(items)
    assert set(docs) == {c.TIDE.link, c.SOURDOUGH.link}
    tide = docs[c.TIDE.link]
    assert tide.platform == "medium" and tide.category.value == "articles"
    assert tide.content["Title"] == c.TIDE.title and tide.content["Subtitle"] == c.TIDE.subtitle
    assert tide.content["published"] == c.TIDE.date
    text = tide.content["Content"]
    assert c.TIDE.title not in text and c.TIDE.subtitle not in text  # heading blocks are not repeated in the body
    assert "```\nresidual = observed_level - predicted_level\nif residual > 0.35:\n    flag('surge')\n```" in text
    assert "## What the residuals say" in text or "### What the residuals say" in text
    assert "Exported from" not in text and "Canonical link" not in text
    # Medium previews the body where a story has no subtitle: stored once, in the body.
    assert docs[c.SOURDOUGH.link].content["Subtitle"] == ""
    reasons = skipped(items)
    assert any("draft" in r for r in reasons.values()) and any("response" in r for r in reasons.values())

    with_all = stored(read(export, include_drafts=True, include_responses=True)[0])
    assert with_all[c.MEDIUM_RESPONSE.link].category.value == "posts"
    assert "https://medium.com/p/0c1d2e3f4a5b" in with_all  # the draft's own link


def test_linkedin_export_shares_and_articles(tmp_path):
    items, _ = read(build.linkedin_export(tmp_path / "li"))
    docs = stored(items)
    assert set(docs) == {c.SHARE_ONE.link, c.SHARE_TWO.link, c.PULSE.link}  # urn%3Ali%3A... decoded
    share = docs[c.SHARE_ONE.link]
    assert share.category.value == "posts" and share.platform == "linkedin"
    assert share.content["Content"] == "\n".join(c.SHARE_ONE.paragraphs)  # multi-line, quotes and commas intact
    assert share.content["Title"] == c.SHARE_ONE.title
    pulse = docs[c.PULSE.link]
    assert pulse.category.value == "articles" and pulse.content["Title"] == c.PULSE.title
    assert "Published on" not in pulse.content["Content"] and "Created on" not in pulse.content["Content"]
    assert pulse.content["published"] == c.PULSE.date
    reasons = list(skipped(items).values())
    assert any("reshare without commentary" in r for r in reasons)
    assert any("unpublished article" in r for r in reasons)


def test_substack_export_needs_site_url_for_public_links(tmp_path):
    export = build.substack_export(tmp_path / "ss")
    docs = stored(read(export, author=c.TOMASZ, site_url=c.TOMASZ_SITE)[0])
    assert set(docs) == {c.BRIDGES.link, c.CABLES.link}
    bridges = docs[c.BRIDGES.link]
    assert bridges.content["Subtitle"] == c.BRIDGES.subtitle and bridges.platform == "substack"
    assert "Subscribe" not in bridges.content["Content"] and "reader@example.org" not in str(bridges.content)
    assert "## Reading the ledger" in bridges.content["Content"]
    without = stored(read(export, author=c.TOMASZ)[0])
    assert set(without) == {
        "substack-export:bridges-remember-every-truck",
        "substack-export:the-sound-of-a-cable-stayed-bridge",
    }


def test_rss_and_atom_feeds(tmp_path):
    rss = tmp_path / "ines.rss"
    rss.write_text(build.rss_feed([c.LAGOON, c.TIDE]))
    items, notes = read(rss)
    assert {i.format for i in items} == {"rss"} and not notes
    docs = stored(items)
    assert set(docs) == {c.LAGOON.link, c.TIDE.link}  # ?source=rss-... dropped
    lagoon = docs[c.LAGOON.link].content
    assert lagoon["Title"] == c.LAGOON.title and lagoon["published"] == c.LAGOON.date
    assert "originally published" not in lagoon["Content"]

    atom = tmp_path / "wren.atom"
    atom.write_text(build.atom_feed([c.SCOUR, c.GUEST]))
    items, _ = read(atom, author=c.TOMASZ)
    assert {i.format for i in items} == {"atom"}
    assert set(stored(items)) == {c.SCOUR.link}
    assert any("written by Halina Brzeska" in (i.skipped or "") for i in items)
    with pytest.raises(ImportFormatError, match="an ATOM feed"):
        read(atom, author=c.TOMASZ, format="rss")


def test_summary_only_feed_items_are_marked_for_crawling(tmp_path):
    rss = tmp_path / "summaries.rss"
    rss.write_text(build.rss_feed([c.LAGOON], full=False))
    items, notes = read(rss)
    assert items[0].document is None and items[0].crawl == c.LAGOON.link
    assert "summary only" in notes[0] and "crawled" in notes[0]


def test_notes_folder(tmp_path):
    docs = stored(read(build.notes_folder(tmp_path / "tomasz_notes"), author=c.TOMASZ)[0])
    assert set(docs) == {c.NOTE_DECK.link, c.NOTE_SURVEY.link, c.NOTE_HTML.link, c.NOTE_TEXT.link}
    deck = docs[c.NOTE_DECK.link]
    assert deck.content["Title"] == c.NOTE_DECK.title and deck.content["published"] == c.NOTE_DECK.date
    assert deck.content["Content"].startswith(c.NOTE_DECK.paragraphs[0]) and "---" not in deck.content["Content"]
    survey = docs[c.NOTE_SURVEY.link]
    assert survey.content["Title"] == c.NOTE_SURVEY.title and c.NOTE_SURVEY.title not in survey.content["Content"]
    assert docs[c.NOTE_TEXT.link].content["Content"] == "\n\n".join(c.NOTE_TEXT.paragraphs)
    assert docs[c.NOTE_HTML.link].content["Title"] == c.NOTE_HTML.title


def test_zipped_export_wrapped_in_a_folder_is_detected(tmp_path):
    build.linkedin_export(tmp_path / "wrap" / "Basic_LinkedInDataExport")
    archive = shutil.make_archive(str(tmp_path / "li"), "zip", tmp_path / "wrap")
    items, _ = read(archive)
    assert {i.format for i in items} == {"linkedin"} and len(stored(items)) == 3


# --- links ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A70/",
            "https://www.linkedin.com/feed/update/urn:li:share:70",
        ),
        ("http://uk.linkedin.com/pulse/a-b?trk=public_post", "https://www.linkedin.com/pulse/a-b"),
        ("https://medium.com/@ada/story-1a2b3c?source=rss----1", "https://medium.com/@ada/story-1a2b3c"),
        ("https://medium.com/@ada/story-1a2b3c?sk=secret", "https://medium.com/@ada/story-1a2b3c?sk=secret"),
        ("https://ada.substack.com/p/slug?r=2x&utm_medium=email", "https://ada.substack.com/p/slug"),
        ("HTTPS://Blog.Example.org:443/post/?utm_source=x&page=2#top", "https://blog.example.org/post/?page=2"),
        ("/home/ada/repos/notes", "/home/ada/repos/notes"),
        ("note:notes/a.md", "note:notes/a.md"),
        ("https://a.org/x%2Fy", "https://a.org/x%2Fy"),
    ],
)
def test_normalize_link(given, expected):
    assert normalize_link(given) == expected


def test_a_subtitle_repeating_the_body_is_detected_even_cut_short():
    body = "The lead paragraph says what the whole article is about, at length. Then it goes on."
    assert repeats_body("The lead paragraph says what the whole article is about, at length.", body)
    assert repeats_body("The lead paragraph says what the whole arti", body)
    assert not repeats_body("Something else entirely is said here", body)
    assert not repeats_body("The lead", body)  # too short to count


# --- bad input -----------------------------------------------------------------------------------------------------
def test_corrupt_zip(tmp_path):
    bad = tmp_path / "medium-export.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(ImportFormatError, match=r"medium-export\.zip: not a valid zip file"):
        read(bad)


def test_zip_with_a_path_that_leaves_the_archive(tmp_path):
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("posts/ok.html", "<html></html>")
        archive.writestr("../../etc/cron.d/evil", "* * * * * root rm -rf /")
    with pytest.raises(ImportFormatError, match=r"evil\.zip!\.\./\.\./etc/cron\.d/evil: unsafe path"):
        read(bad)


def test_zip_bomb_by_ratio_size_and_count(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("posts/zeros.html", b"\0" * (8 * 1024 * 1024))
    with pytest.raises(ImportFormatError, match=r"bomb\.zip!posts/zeros\.html: compression ratio .*zip bomb"):
        read(bomb)
    with pytest.raises(ImportFormatError, match="over the 1048576-byte limit per file"):
        read(bomb, limits=ArchiveLimits(max_file_bytes=1024 * 1024))
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(30):
            archive.writestr(f"notes/{i}.md", f"# Note {i}\n\ntext")
    with pytest.raises(ImportFormatError, match="holds 30 members, over the limit of 20"):
        read(many, limits=ArchiveLimits(max_files=20))


def test_zip_member_larger_than_its_header_declares(tmp_path):
    liar = tmp_path / "liar.zip"
    with zipfile.ZipFile(liar, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("note.md", "# Title\n\n" + "word " * 200)
    data = bytearray(liar.read_bytes())
    # Shrink the declared size in the central directory (offset 24 of the entry: uncompressed size).
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    liar.write_bytes(bytes(data))
    with pytest.raises(ImportFormatError, match=r"liar\.zip!note\.md: (holds more data|corrupt member)"):
        read(liar, format="folder")


def test_csv_with_the_wrong_columns_names_the_file(tmp_path):
    export = build.linkedin_export(tmp_path / "li")
    (export / "Shares.csv").write_text("Date,Link,Text\n2024-01-01,https://x,hello\n")
    with pytest.raises(ImportFormatError, match=r"Shares\.csv: wrong columns: missing ShareLink, ShareCommentary"):
        read(export)


def test_csv_row_with_extra_fields_names_the_row(tmp_path):
    export = build.substack_export(tmp_path / "ss")
    lines = (export / "posts.csv").read_text().splitlines()
    lines[2] += ",surplus,fields"
    (export / "posts.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFormatError, match=r"posts\.csv row 2 \(line 3\): 12 fields for 10 columns"):
        read(export, author=c.TOMASZ)


def test_substack_post_without_its_body_file(tmp_path):
    export = build.substack_export(tmp_path / "ss")
    next((export / "posts").glob("*bridges*")).unlink()
    with pytest.raises(ImportFormatError, match=r"posts\.csv row 1 \(line 2\): its body .*missing"):
        read(export, author=c.TOMASZ)


def test_html_file_without_a_body(tmp_path):
    export = build.medium_export(tmp_path / "medium")
    post = next((export / "posts").glob("2024-06-11_*"))
    post.write_text("<html><head><title>Empty</title></head></html>")
    with pytest.raises(ImportFormatError, match=rf"{post.name}: no post body"):
        read(export)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "empty.html").write_text("<html><body><script>app()</script></body></html>")
    with pytest.raises(ImportFormatError, match=r"empty\.html: no article text found"):
        read(notes, format="folder")


def test_feed_that_is_not_xml(tmp_path):
    page = tmp_path / "feed.xml"
    page.write_text("<html><body><p>Not a feed, a web page <b>with broken tags</p></body>")
    with pytest.raises(ImportFormatError, match=r"feed\.xml: not an RSS or Atom feed"):
        read(page)
    garbage = tmp_path / "feed.rss"
    garbage.write_bytes(b"\x00\x01 binary junk")
    with pytest.raises(ImportFormatError, match=r"feed\.rss: not an RSS or Atom feed"):
        read(garbage)


def test_bad_front_matter_and_unknown_folders(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    with pytest.raises(ImportFormatError, match=r"broken\.md: invalid YAML front matter"):
        read(notes)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ImportFormatError, match="no known export found"):
        read(empty)
    with pytest.raises(ImportFormatError, match="no such file or folder"):
        read(tmp_path / "missing.zip")


def test_a_zipped_notes_folder_and_a_single_note_keep_the_folder_links(tmp_path):
    folder = build.notes_folder(tmp_path / "tomasz_notes")
    from_folder = set(stored(read(folder, author=c.TOMASZ)[0]))
    archive = shutil.make_archive(str(tmp_path / "zipped" / "tomasz_notes"), "zip", tmp_path, "tomasz_notes")
    assert set(stored(read(archive, author=c.TOMASZ)[0])) == from_folder
    (single,) = stored(read(folder / "bearing-replacement.txt", author=c.TOMASZ)[0])
    assert single == c.NOTE_TEXT.link


def test_a_real_linkedin_pulse_lead_paragraph_is_stored_once():
    """The issue's case, on a real saved Pulse page: its meta description repeats the lead paragraph, cut short."""
    from llm_engineering.application.crawlers.extraction import extract_article, parse_html
    from llm_engineering.application.crawlers.linkedin import PULSE_HINTS

    page = Path(__file__).parents[2] / "bench" / "extraction_pages" / "linkedin-pulse-2025-nutrition-trends.html"
    link = "https://www.linkedin.com/pulse/nutrition-2025-trends"
    content = extract_article(parse_html(page.read_bytes()), link, link, PULSE_HINTS)
    assert content["Subtitle"] == ""
    lead = "brought together leading experts, thought leaders, and clinicians to Orlando"
    assert content["Content"].count(lead) == 1


def test_linkedin_article_without_a_heading_or_without_a_body(tmp_path):
    export = build.linkedin_export(tmp_path / "li", shares=[], drafts=[])
    article = export / "Articles" / "Articles" / f"{c.PULSE.title}.html"
    article.write_text(article.read_text().replace("<h1>", "<h2>").replace("</h1>", "</h2>"))
    items, _ = read(export)
    assert "unpublished" in (items[-1].skipped or "")  # no h1 link: no public address
    (doc,) = stored(read(export, include_drafts=True)[0]).values()
    assert doc.content["Title"] == c.PULSE.title
    article.write_text("<html><head><title>x</title></head></html>")
    with pytest.raises(ImportFormatError, match=r"Harbour Dredging\.html: no <body>"):
        read(export)
