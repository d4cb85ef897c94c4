"""Boilerplate by evidence: lines repeated across many documents of one site are removed, the author's own lines
(even ones that look like furniture, said once) and code are kept, and a site with too few documents is left as is."""

from __future__ import annotations

from uuid import uuid4

from llm_engineering.application.preprocessing.boilerplate import learn_boilerplate, remove_boilerplate, site_of
from llm_engineering.domain.chunks import CleanedDocument
from llm_engineering.domain.types import DataCategory

# Substack's share widget as the LLM-Engineers-Handbook export keeps it in every article.
WIDGET = "\n".join(
    ["Copy link", "Facebook", "Email", "Note", "Other", "SubscribeSign in", "Restacks", "Ready for more?",
     "unblock scripts", "PreviousNext", "maximelabonne.substack.com"]
)  # fmt: skip


def _doc(link: str, body: str, category: DataCategory = DataCategory.ARTICLES) -> CleanedDocument:
    return CleanedDocument(
        id=uuid4(), category=category, author_id=uuid4(), author_full_name="Maxime Labonne", platform="substack",
        link=link, title="t", text=body, source_hash="h",
    )  # fmt: skip


def _articles(n: int) -> list[CleanedDocument]:
    return [
        _doc(
            f"https://maximelabonne.substack.com/p/post-{i}",
            f"## Conclusion\n\nArticle {i} explains quantization step {i}.\n\n{WIDGET}\n\n```\nCopy link\n```",
        )
        for i in range(n)
    ]


def test_the_share_widget_is_learned_per_site_and_removed():
    documents, evidence = remove_boilerplate(_articles(5))
    assert evidence.summary()["maximelabonne.substack.com"] == {"documents": 5, "lines": 11}
    for i, document in enumerate(documents):
        assert "SubscribeSign in" not in document.text and "Restacks" not in document.text
        assert "maximelabonne.substack.com" not in document.text
        assert f"Article {i} explains quantization step {i}." in document.text
        assert "## Conclusion" in document.text  # headings are the author's structure
        assert "```\nCopy link\n```" in document.text  # code is never furniture


def test_a_line_said_once_and_a_small_site_are_kept():
    articles = _articles(4)
    articles[0] = _doc(articles[0].link, "Note\n\nCopy link is a button I added myself.")
    small = [_doc(f"https://tiny.dev/{i}", "Subscribe\n\nA real sentence.") for i in range(2)]
    documents, evidence = remove_boilerplate([*articles, *small])
    assert "Copy link is a button I added myself." in documents[0].text
    assert all("Subscribe" in d.text for d in documents[-2:]) and "tiny.dev" not in evidence.lines
    assert site_of("https://www.Example.com/a") == "example.com"


def test_repositories_are_untouched():
    repos = [_doc(f"https://github.com/a/r{i}", "Copy link\nimport os", DataCategory.REPOSITORIES) for i in range(4)]
    documents, evidence = remove_boilerplate(repos)
    assert documents == repos and not evidence.lines
    assert learn_boilerplate([]).lines == {}
