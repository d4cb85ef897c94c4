"""The QA-set validator: a good file passes, each kind of mistake is reported with its line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tools.validate_qa import Corpus, load_corpus, main, validate

PROJECT_ROOT = Path(__file__).parents[2]
ADA = "0b7c1d5e-8f7a-4b8e-9d51-2c7f3a9e6b10"
GRACE = "5a3e9c21-6d4b-4f8a-b1e7-93c0d2f4a8b6"
LINK_ADA = "https://blog.example.org/ada/chunking/"
LINK_GRACE = "https://blog.example.org/grace/compilers/"
LINK_SHARED = "https://blog.example.org/grace/notes/"


def _article(uid: str, author_id: str, author: str, link: str, content: str) -> dict:
    return {
        "_id": uid,
        "content": {"Title": link.rsplit("/", 2)[-2], "Subtitle": "", "Content": content},
        "platform": "blog",
        "author_id": author_id,
        "author_full_name": author,
        "link": link,
    }


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    users = [
        {"_id": ADA, "first_name": "Ada", "last_name": "Lovelace"},
        {"_id": GRACE, "first_name": "Grace", "last_name": "Hopper"},
    ]
    articles = [
        _article(
            "7d1f6a2e-3c4b-4e5f-8a9b-0c1d2e3f4a5b",
            ADA,
            "Ada Lovelace",
            LINK_ADA,
            "## Chunking\n\nWe split every note into chunks of 256\ntokens with a 32-token overlap.\n\n"
            "Shared boilerplate sentence.",
        ),
        _article(
            "8e2a7b3f-4d5c-4f6a-9b0c-1d2e3f4a5b6c",
            GRACE,
            "Grace Hopper",
            LINK_GRACE,
            "The first compiler I wrote was A-0, in 1952. Nobody believed it could work.",
        ),
        _article(
            "9f3b8c4a-5e6d-4a7b-8c1d-2e3f4a5b6c7d",
            GRACE,
            "Grace Hopper",
            LINK_SHARED,
            "Shared boilerplate sentence. Also a nanosecond is about a foot of wire.",
        ),
    ]
    (folder / "UserDocument.json").write_text(json.dumps(users), encoding="utf-8")
    (folder / "ArticleDocument.json").write_text(json.dumps(articles), encoding="utf-8")
    return folder


@pytest.fixture
def corpus(export_dir: Path) -> Corpus:
    return load_corpus(export_dir)


GOOD = [
    {
        "question": "How many tokens are the chunks, and how large is their overlap?",
        "link": LINK_ADA,
        "kind": "specific",
        "evidence": "We split every note into chunks of 256 tokens with a 32-token overlap.",
    },
    {
        "question": "What was the name of the earliest program translator, and in which year?",
        "link": LINK_GRACE,
        "kind": "paraphrase",
        "evidence": "The first compiler I wrote was A-0, in 1952.",
    },
    {
        "question": "How long does Grace Hopper say a nanosecond of wire is?",
        "link": LINK_SHARED + "/",  # trailing slash: same link for the evaluator
        "kind": "author",
        "author": "Grace Hopper",
        "evidence": "a nanosecond is about a foot of wire.",
    },
]


def lines(*records: dict | str) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


def problems_of(records: list[dict | str], corpus: Corpus, require_evidence: bool | None = None) -> list[tuple]:
    report = validate(lines(*records), corpus, require_evidence)
    return [(p.line, p.field, p.message) for p in report.problems]


def test_a_good_file_passes(corpus: Corpus):
    report = validate(lines(*GOOD), corpus)
    assert report.ok, report.problems
    assert report.evidence_rules
    assert report.questions == 3
    assert dict(report.kinds) == {"specific": 1, "paraphrase": 1, "author": 1}


def test_evidence_is_compared_after_collapsing_whitespace_only(corpus: Corpus):
    record = dict(GOOD[0], evidence="We  split every note into chunks of 256 tokens\n with a 32-token overlap.")
    assert problems_of([record], corpus) == []
    changed = dict(GOOD[0], evidence="We split every note into chunks of 256 tokens, with a 32-token overlap.")
    [(line, field, message)] = problems_of([changed], corpus)
    assert (line, field) == (1, "evidence")
    assert "not found verbatim" in message and "diverges at ', with a 32-token" in message


@pytest.mark.parametrize(
    ("bad_line", "field", "fragment"),
    [
        ("{not json", "json", "invalid JSON"),
        ("[1, 2]", "json", "expected an object"),
        ({"link": LINK_ADA, "kind": "specific", "evidence": "Shared"}, "question", "missing"),
        ({"question": "Where?", "kind": "specific", "evidence": "x"}, "link", "missing"),
        ({"question": " ", "link": LINK_ADA, "kind": "specific", "evidence": "x"}, "question", "non-empty string"),
        (dict(GOOD[0], kind="fact"), "kind", "not one of specific, paraphrase, author"),
        ({k: v for k, v in GOOD[0].items() if k != "kind"}, "kind", "missing"),
        (dict(GOOD[0], evidnce="typo"), "evidnce", "unknown field"),
        (dict(GOOD[0], link="https://blog.example.org/nowhere/"), "link", "no document of the folder"),
        (dict(GOOD[0], evidence="Shared boilerplate sentence."), "evidence", "also found in"),
        (dict(GOOD[0], evidence="word " * 200), "evidence", "keep it to 1-3 sentences"),
        (dict(GOOD[0], author="Ada Lovelace"), "author", "only kind 'author'"),
        ({k: v for k, v in GOOD[2].items() if k != "author"}, "author", "missing: kind 'author'"),
        (dict(GOOD[2], author=None), "author", "missing: kind 'author'"),
        (dict(GOOD[2], author="Alan Turing"), "author", "is no author of the folder"),
        (dict(GOOD[2], author="Ada Lovelace", question="What does Lovelace say?"), "author", "is by 'Grace Hopper'"),
        (dict(GOOD[2], question="How long is a nanosecond of wire?"), "question", "must name 'Grace Hopper'"),
    ],
)
def test_each_mistake_is_reported_on_its_line_and_field(corpus: Corpus, bad_line, field, fragment):
    found = problems_of([GOOD[1], bad_line], corpus, require_evidence=True)
    assert found, "the mistake went unnoticed"
    assert all(line == 2 for line, _, _ in found), found
    assert any(f == field and fragment in message for _, f, message in found), found


def test_surname_alone_names_the_author(corpus: Corpus):
    record = dict(GOOD[2], question="How long does Hopper say a nanosecond of wire is?")
    assert problems_of([record], corpus) == []


def test_duplicate_questions_point_at_the_first(corpus: Corpus):
    duplicate = dict(GOOD[1], question="  what was the NAME of the earliest program translator, and in which year ")
    found = problems_of([GOOD[0], GOOD[1], duplicate], corpus)
    assert found == [(3, "question", "duplicates the question on line 2")]


def test_files_without_evidence_use_the_older_rules(corpus: Corpus):
    legacy = [
        {"question": "How big are the chunks?", "link": LINK_ADA, "kind": "fact"},
        {"question": "Who wrote A-0?", "link": LINK_GRACE},
        {
            "question": "What does Hopper say about wire?",
            "link": LINK_SHARED,
            "kind": "author",
            "author": "Grace Hopper",
        },
    ]
    report = validate(lines(*legacy), corpus)
    assert report.ok, report.problems
    assert not report.evidence_rules
    forced = problems_of(legacy, corpus, require_evidence=True)
    assert {(line, field) for line, field, _ in forced} >= {(1, "kind"), (1, "evidence"), (2, "kind")}


def test_an_empty_file_is_a_problem(corpus: Corpus):
    assert problems_of([], corpus) == [(0, "file", "holds no questions")]


def test_cli_reports_file_line_field_and_exits_1(export_dir: Path, tmp_path: Path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(lines(GOOD[0], dict(GOOD[1], kind="fact"))) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--qa", str(qa), "--data-dir", str(export_dir)])
    assert result.exit_code == 1
    assert f"{qa}:2: kind: 'fact' is not one of specific, paraphrase, author" in result.output
    assert "FAILED: 1 problem(s)" in result.output


def test_cli_passes_a_good_file(export_dir: Path, tmp_path: Path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(lines(*GOOD)) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--qa", str(qa), "--data-dir", str(export_dir)])
    assert result.exit_code == 0, result.output
    assert "OK: 3 questions" in result.output


def test_cli_exits_2_when_inputs_cannot_be_read(export_dir: Path, tmp_path: Path):
    missing_qa = CliRunner().invoke(main, ["--qa", str(tmp_path / "absent.jsonl"), "--data-dir", str(export_dir)])
    assert missing_qa.exit_code == 2
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps(GOOD[0]) + "\n", encoding="utf-8")
    missing_dir = CliRunner().invoke(main, ["--qa", str(qa), "--data-dir", str(tmp_path / "nowhere")])
    assert missing_dir.exit_code == 2
    assert "not a usable export folder" in missing_dir.output


@pytest.mark.parametrize(
    ("qa_path", "data_dir", "evidence_rules"),
    [("data/sample/qa.jsonl", "data/sample", False), ("data/eval/rag_blogs/qa.jsonl", "data/eval/rag_blogs", True)],
)
def test_the_published_qa_sets_are_valid(qa_path: str, data_dir: str, evidence_rules: bool):
    corpus = load_corpus(PROJECT_ROOT / data_dir)
    report = validate((PROJECT_ROOT / qa_path).read_text(encoding="utf-8").splitlines(), corpus)
    assert report.ok, [p.render(qa_path) for p in report.problems[:10]]
    assert report.evidence_rules is evidence_rules
