"""Cleaning keeps meaning: paragraphs, code blocks and URLs survive; page furniture does not."""

from __future__ import annotations

import uuid

from llm_engineering.application.preprocessing.cleaning import (
    clean_document,
    clean_prose,
    is_boilerplate,
    split_repository_files,
)
from llm_engineering.domain.documents import ArticleDocument, PostDocument, RepositoryDocument
from llm_engineering.domain.types import DataCategory

AUTHOR = {"author_id": uuid.uuid4(), "author_full_name": "Ada Lovelace"}

ARTICLE = """Open in app

## Why   tokens\u00a0matter

First paragraph with a link https://example.org/a_b?x=1&y=2 and   extra   spaces.\u200b
Second line of the same paragraph.



Second paragraph. It says subscribe to nothing, so it stays.

```python
def f(x):

    if x:
        return   x  # spacing inside code is kept
```

Share this post
Thanks for reading Ada's Notes! Subscribe for free to receive new posts.
Subscribe
Written by Ada Lovelace
1.2K Followers
© 2025 Ada Lovelace · Privacy ∙ Terms
"""


def test_prose_cleaning_keeps_paragraphs_code_and_urls_and_drops_boilerplate():
    text = clean_prose(ARTICLE)
    assert text.startswith("## Why tokens matter")  # nbsp normalised, runs of spaces collapsed
    assert "https://example.org/a_b?x=1&y=2" in text
    assert "First paragraph with a link https://example.org/a_b?x=1&y=2 and extra spaces.\nSecond line" in text
    assert "\n\nSecond paragraph. It says subscribe to nothing, so it stays." in text
    assert "def f(x):\n\n    if x:\n        return   x  # spacing inside code is kept\n```" in text
    for furniture in ("Open in app", "Share this post", "Thanks for reading", "Followers", "©", "Written by"):
        assert furniture not in text
    assert "\n\n\n" not in text
    assert "\u200b" not in text


def test_boilerplate_is_line_level_and_conservative():
    assert is_boilerplate("Subscribe")
    assert is_boilerplate("Like Comment Repost Send")
    assert is_boilerplate("5 min read")
    assert not is_boilerplate("Subscribe to the change stream so that the consumer sees every update in order.")
    assert not is_boilerplate("## Follow the data")


def test_article_document_cleaning_uses_title_subtitle_and_content():
    doc = ArticleDocument(
        **AUTHOR,
        platform="medium",
        link="https://medium.com/@ada/x",
        content={"Title": "  Notes ", "Subtitle": "On engines", "Content": ARTICLE, "language": "en"},
    )
    cleaned = clean_document(doc)
    assert cleaned.title == "Notes"
    assert cleaned.text.startswith("On engines\n\n## Why tokens matter")
    assert "en" not in cleaned.text.split()
    assert cleaned.source_hash == doc.content_hash
    assert cleaned.category == DataCategory.ARTICLES


def test_handbook_post_with_nested_content_is_cleaned():
    doc = PostDocument(
        **AUTHOR,
        platform="linkedin",
        link="https://www.linkedin.com/posts/ada_1",
        content={"Post_1": {"text": "Engines   compute.\n\nLike Comment Repost Send", "image": "https://x/y.png"}},
    )
    cleaned = clean_document(doc)
    assert cleaned.text == "Engines compute."
    assert cleaned.title.startswith("Engines compute.")


def test_repository_cleaning_keeps_code_byte_for_byte_and_skips_lock_files():
    code = "class A:\r\n    def f(self):\t\r\n\r\n        return  1\r\n"
    doc = RepositoryDocument(
        **AUTHOR,
        platform="github",
        link="https://github.com/ada/engine",
        name="engine",
        content={"src/a.py": code, "poetry.lock": "[[package]]", "node_modules/x/index.js": "x", "README.md": "# E"},
    )
    cleaned = clean_document(doc)
    files = split_repository_files(cleaned.text)
    assert [path for path, _ in files] == ["README.md", "src/a.py"]
    assert dict(files)["src/a.py"] == "class A:\n    def f(self):\n\n        return  1"
    assert cleaned.title == "engine"
