"""Check a retrieval QA set (JSONL) against the export folder it is about.

python -m tools.validate_qa --qa data/eval/rag_blogs/qa.jsonl --data-dir data/eval/rag_blogs
python -m tools.validate_qa --qa data/sample/qa.jsonl --data-dir data/sample

One JSON object per line: `question`, `link` (the one document that answers it), `kind`, and where needed
`author` and `evidence`. Every problem is reported as `FILE:LINE: field: why`; the exit status is 1 when there
is any, 2 when the QA file or the export folder cannot be read.

Two rule sets, chosen per file:
- evidence sets (any line has `evidence`, or `--require-evidence`): `kind` is one of specific / paraphrase /
  author, and every line carries `evidence`: 1-3 sentences copied verbatim from the linked document (compared
  after collapsing whitespace) and found in no other document of the folder;
- older sets without evidence (`data/sample/qa.jsonl`): `kind` is optional and free-form.
Both: valid JSON objects, known fields only, the link is a document of the folder, `author` is set exactly
for kind `author`, names an author of the folder who wrote the linked document and is named in the question
(full name or surname), and no question appears twice.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from tools._cli import run_cli

EVIDENCE_KINDS = ("specific", "paraphrase", "author")
AUTHOR_KIND = "author"
KNOWN_FIELDS = ("question", "link", "kind", "author", "evidence")
MAX_EVIDENCE_CHARS = 600
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Corpus:
    """What the checks need from an export folder: each document's text and author, by normalised link."""

    texts: dict[str, str]  # link -> whitespace-collapsed text
    authors: dict[str, str]  # link -> author full name
    people: frozenset[str]  # full names of the folder's users and document authors


@dataclass(frozen=True)
class Problem:
    line: int  # 0: the file as a whole
    field: str
    message: str

    def render(self, path: str) -> str:
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.field}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    questions: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    links: set[str] = field(default_factory=set)
    evidence_rules: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def normalize_link(link: str) -> str:
    from llm_engineering.application.evaluation.retrieval import normalize_link as evaluator_normalize

    return evaluator_normalize(link)


def document_text(content: dict[str, Any]) -> str:
    """Article and post text is `Content`; a repository's text is all of its files."""
    text = content.get("Content")
    if isinstance(text, str):
        return text
    return "\n".join(value for value in content.values() if isinstance(value, str))


def load_corpus(data_dir: Path) -> Corpus:
    """Read an export folder with the importer's own parser (raises ImportFormatError when it is malformed)."""
    from llm_engineering.application.warehouse.transfer import load_export_folder

    users, documents = load_export_folder(data_dir)
    texts: dict[str, str] = {}
    authors: dict[str, str] = {}
    for docs in documents.values():
        for doc in docs:
            link = normalize_link(doc.link)
            texts[link] = collapse(document_text(doc.content))
            authors[link] = doc.author_full_name
    people = frozenset({u.full_name for u in users} | set(authors.values()))
    return Corpus(texts=texts, authors=authors, people=people)


def _question_key(question: str) -> str:
    return collapse(question).casefold().rstrip(" ?.!")


def _names_author(question: str, author: str) -> bool:
    """The question names the author by full name or by surname (whole words, any case)."""
    candidates = {author, author.split(" ")[-1]}
    return any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", question, re.IGNORECASE) for name in candidates)


def _divergence(evidence: str, text: str) -> str:
    """Where the evidence stops matching the document, for an actionable message."""
    low, high = 0, len(evidence)
    while low < high:  # longest prefix of the evidence that occurs in the text
        middle = (low + high + 1) // 2
        if evidence[:middle] in text:
            low = middle
        else:
            high = middle - 1
    if low == 0:
        return "not even its first character matches"
    return f"the first {low} characters match; it diverges at {evidence[low : low + 40]!r}"


def _parse_lines(lines: list[str]) -> tuple[list[tuple[int, dict[str, Any]]], list[Problem]]:
    records: list[tuple[int, dict[str, Any]]] = []
    problems: list[Problem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, "json", f"invalid JSON at column {exc.colno}: {exc.msg}"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(number, "json", f"expected an object, found a JSON {type(record).__name__}"))
            continue
        records.append((number, record))
    return records, problems


def validate(lines: list[str], corpus: Corpus, require_evidence: bool | None = None) -> Report:
    """Check QA lines against a corpus. `require_evidence=None`: evidence rules apply when any line has evidence."""
    records, problems = _parse_lines(lines)
    report = Report(problems=problems)
    if require_evidence is None:
        require_evidence = any("evidence" in record for _, record in records)
    report.evidence_rules = require_evidence
    if not records and not problems:
        report.problems.append(Problem(0, "file", "holds no questions"))
    seen: dict[str, int] = {}
    for number, record in records:
        report.questions += 1
        report.problems.extend(_check_record(number, record, corpus, require_evidence, seen, report))
    return report


def _check_record(
    number: int, record: dict[str, Any], corpus: Corpus, require_evidence: bool, seen: dict[str, int], report: Report
) -> list[Problem]:
    problems: list[Problem] = []

    def problem(name: str, message: str) -> None:
        problems.append(Problem(number, name, message))

    for name in sorted(set(record) - set(KNOWN_FIELDS)):
        problem(name, f"unknown field (known: {', '.join(KNOWN_FIELDS)})")

    def text_field(name: str, required: bool) -> str | None:
        value = record.get(name)
        if value is None:
            if required:
                problem(name, "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            problem(name, f"must be a non-empty string, found {json.dumps(value)[:60]}")
            return None
        return value

    question = text_field("question", required=True)
    link = text_field("link", required=True)
    kind = text_field("kind", required=require_evidence)
    author = text_field("author", required=False)
    evidence = text_field("evidence", required=require_evidence)

    if kind is not None:
        report.kinds[kind] += 1
        if require_evidence and kind not in EVIDENCE_KINDS:
            problem("kind", f"{kind!r} is not one of {', '.join(EVIDENCE_KINDS)}")

    if question is not None:
        key = _question_key(question)
        if key in seen:
            problem("question", f"duplicates the question on line {seen[key]}")
        else:
            seen[key] = number

    target = None
    if link is not None:
        target = normalize_link(link)
        if target not in corpus.texts:
            problem("link", f"no document of the folder has the link {link!r}")
            target = None
        else:
            report.links.add(target)

    if kind == AUTHOR_KIND and record.get("author") is None:
        problem("author", "missing: kind 'author' needs the author's full name")
    if author is not None:
        if kind != AUTHOR_KIND:
            problem("author", f"set, but kind is {kind!r}: only kind 'author' questions carry an author filter")
        elif author not in corpus.people:
            problem("author", f"{author!r} is no author of the folder (known: {', '.join(sorted(corpus.people))})")
        else:
            if target is not None and corpus.authors[target] != author:
                problem("author", f"the linked document is by {corpus.authors[target]!r}, not {author!r}")
            if question is not None and not _names_author(question, author):
                problem("question", f"kind 'author' question must name {author!r} (full name or surname)")

    if evidence is not None and target is not None:
        wanted = collapse(evidence)
        if len(wanted) > MAX_EVIDENCE_CHARS:
            problem("evidence", f"{len(wanted)} characters; keep it to 1-3 sentences (<= {MAX_EVIDENCE_CHARS})")
        if wanted not in corpus.texts[target]:
            problem(
                "evidence",
                f"not found verbatim in the Content of {link} (whitespace collapsed): "
                f"{_divergence(wanted, corpus.texts[target])}",
            )
        elif require_evidence:
            others = [other for other, text in corpus.texts.items() if other != target and wanted in text]
            if others:
                problem("evidence", f"also found in {', '.join(others[:3])}: the answer must be in one document")
    return problems


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--qa", "qa_path", required=True, type=click.Path(path_type=Path), help="QA set (JSONL).")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Export folder the links point into (UserDocument.json, ArticleDocument.json, ...).",
)
@click.option(
    "--require-evidence/--no-require-evidence",
    default=None,
    help="Evidence rules on/off. Default: on when any line of the file has an `evidence` field.",
)
def main(qa_path: Path, data_dir: Path, require_evidence: bool | None) -> None:
    from llm_engineering.domain.errors import ImportFormatError

    try:
        lines = qa_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"{qa_path}: cannot read the QA file: {exc}", err=True)
        raise SystemExit(2) from exc
    try:
        corpus = load_corpus(data_dir)
    except ImportFormatError as exc:
        click.echo(f"{data_dir}: not a usable export folder: {exc}", err=True)
        raise SystemExit(2) from exc

    report = validate(lines, corpus, require_evidence)
    for problem in report.problems:
        click.echo(problem.render(str(qa_path)), err=True)
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(report.kinds.items())) or "none"
    rules = "evidence rules" if report.evidence_rules else "no evidence required"
    summary = (
        f"{report.questions} questions ({kinds}) over {len(report.links)} of {len(corpus.texts)} documents; {rules}"
    )
    if report.problems:
        click.echo(f"FAILED: {len(report.problems)} problem(s); {summary}", err=True)
        raise SystemExit(1)
    click.echo(f"OK: {summary}")


if __name__ == "__main__":
    run_cli(main)
