"""Extract splitting: contiguous slices of the author's text, within the token bounds, code never cut."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from llm_engineering.application.datasets.extracts import ExtractConfig, ExtractSplitter, code_blocks, markdown_blocks
from llm_engineering.domain.chunks import CleanedDocument
from llm_engineering.domain.datasets import DropReason
from llm_engineering.settings import PROJECT_ROOT
from tests.fakes import WordCounter

FENCE = re.compile(r"```.*?```", re.DOTALL)


def document(text: str, category: str = "articles") -> CleanedDocument:
    return CleanedDocument(
        id=uuid.uuid4(),
        category=category,
        author_id=uuid.uuid4(),
        author_full_name="Ada Lovelace",
        platform="blog",
        link=f"https://example.org/{uuid.uuid4().hex[:6]}",
        title="A title",
        source_hash="x",
        text=text,
    )


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + n)) + "."


def splitter(min_tokens=10, target_tokens=20, max_tokens=40) -> ExtractSplitter:
    return ExtractSplitter(WordCounter(), ExtractConfig(min_tokens=min_tokens, target_tokens=target_tokens,
                                                        max_tokens=max_tokens))  # fmt: skip


def test_paragraphs_are_packed_within_bounds_and_stay_verbatim():
    text = "\n\n".join(words(n, start=100 * i) for i, n in enumerate([12, 6, 15, 30, 8, 3]))
    doc = document(text)
    extracts, drops = splitter().split_document(doc)
    assert extracts
    for extract in extracts:
        assert extract.text in doc.text  # a contiguous slice
        assert 10 <= extract.token_count <= 40
        assert extract.token_count == len(extract.text.split())
        assert not extract.text.startswith("\n") and not extract.text.endswith("\n")
    covered = " ".join(e.text for e in extracts).split()
    assert len(covered) == len(set(covered))  # no overlap between extracts
    assert [e.position for e in extracts] == list(range(len(extracts)))
    assert sum(drops.values()) == 0  # the 3-word tail joined the extract before it


def test_headings_start_sections_and_are_not_part_of_answers():
    text = f"## First\n\n{words(12)}\n\n## Second part\n\n{words(14, 50)}\n\n{words(12, 80)}"
    extracts, _ = splitter(target_tokens=12).split_document(document(text))
    assert [e.section for e in extracts] == ["First", "Second part", "Second part"]
    assert all("#" not in e.text for e in extracts)


def test_code_blocks_are_never_cut():
    code = "```python\ndef f(x):\n\n    return x + 1\n\n\nprint(f(1))\n```"
    long_code = "```\n" + "\n\n".join(f"line_{i} = {i}" for i in range(40)) + "\n```"
    text = f"{words(8)}\n\n{code}\n\n{words(12, 20)}\n\n{long_code}\n\n{words(11, 40)}"
    extracts, drops = splitter().split_document(document(text))
    joined = [e for e in extracts if "```" in e.text]
    assert len(joined) == 1 and code in joined[0].text and joined[0].has_code
    assert all(long_code not in e.text and "line_3 = 3" not in e.text for e in extracts)
    assert drops[DropReason.EXTRACT_TOO_LONG] == 1  # the 80-word block does not fit and is not cut
    for extract in extracts:  # every fence that opens in an extract closes in it
        assert extract.text.count("```") % 2 == 0


def test_a_long_paragraph_is_cut_between_sentences():
    sentences = [f"Sentence {i} " + words(9, 10 * i) for i in range(8)]
    text = " ".join(s[:-1] + "." for s in sentences)
    extracts, _ = splitter().split_document(document(text))
    assert len(extracts) >= 2
    for extract in extracts:
        assert extract.text.endswith(".") and extract.text[0] == "S"
        assert extract.token_count <= 40


def test_a_lead_in_ending_with_a_colon_stays_with_what_follows():
    text = f"{words(25)[:-1]} for example:\n\n```\nx = 1\n```\n\n{words(12, 50)}"
    extracts, _ = splitter(target_tokens=20).split_document(document(text))
    assert "for example:\n\n```\nx = 1\n```" in extracts[0].text


def test_hashtag_lines_are_left_out():
    extracts, _ = splitter().split_document(document(f"{words(15)}\n\n#LLM #RAG", category="posts"))
    assert len(extracts) == 1 and "#LLM" not in extracts[0].text


def test_short_pieces_that_cannot_merge_are_counted():
    text = f"## A\n\n{words(4)}\n\n## B\n\n{words(15, 10)}"
    extracts, drops = splitter().split_document(document(text))
    assert len(extracts) == 1 and drops[DropReason.EXTRACT_TOO_SHORT] == 1


def test_repository_files_split_on_top_level_definitions():
    body = "def a():\n    x = 1\n\n    return x\n\n\ndef b():\n    return 2\n"
    text = f"### File: README.md\n# tool\n\n{words(12)}\n\n### File: pkg/mod.py\n{body}"
    blocks = code_blocks(body)
    assert [body[b.start : b.end].split("\n")[0] for b in blocks] == ["def a():", "def b():"]
    extracts, _ = splitter(min_tokens=2, target_tokens=4).split_document(document(text, category="repositories"))
    sections = [e.section for e in extracts]
    assert "README.md › tool" in sections and "pkg/mod.py" in sections
    code = [e for e in extracts if e.section == "pkg/mod.py"]
    assert "def a():\n    x = 1\n\n    return x" in code[0].text  # the blank line inside a() did not cut it
    assert all("### File" not in e.text for e in extracts)


def test_markdown_blocks_keep_unclosed_fence_to_the_end():
    text = "intro\n\n```\ncode\n\nmore"
    blocks = markdown_blocks(text)
    assert [b.kind for b in blocks] == ["prose", "code"]
    assert text[blocks[1].start : blocks[1].end] == "```\ncode\n\nmore"


def test_config_bounds_must_be_ordered():
    with pytest.raises(ValueError):
        ExtractConfig(min_tokens=100, target_tokens=50, max_tokens=200)


def test_sample_corpus_extracts_respect_bounds_and_keep_code_fences_whole():
    """The real sample corpus (cleaned by the project's cleaners), measured in words."""
    from llm_engineering.application.preprocessing.cleaning import clean_document
    from llm_engineering.domain.documents import ArticleDocument

    config = ExtractConfig(min_tokens=40, target_tokens=110, max_tokens=260)
    split = ExtractSplitter(WordCounter(), config)
    records = json.loads((PROJECT_ROOT / "data/sample/ArticleDocument.json").read_text())
    total = 0
    for record in records:
        raw = ArticleDocument(**{**record, "id": record["_id"]})
        cleaned = clean_document(raw)
        extracts, _ = split.split_document(cleaned)
        total += len(extracts)
        fences = FENCE.findall(cleaned.text)
        for extract in extracts:
            assert extract.text in cleaned.text
            assert config.min_tokens <= extract.token_count <= config.max_tokens
            assert extract.text.count("```") % 2 == 0
        for fence in fences:  # each code block is whole in one extract, or in none (too long)
            assert sum(fence in e.text for e in extracts) <= 1
            assert not any(fence not in e.text and fence.splitlines()[1] in e.text for e in extracts)
    assert total >= 40
