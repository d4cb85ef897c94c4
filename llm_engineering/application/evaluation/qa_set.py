"""The RAG evaluation's QA set: questions with their source link, reference answers and evidence, and the
reference contexts looked up in the feature store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_engineering.application.evaluation.retrieval import normalize_link
from llm_engineering.application.jsonl import read_jsonl_objects
from llm_engineering.application.ports import Retriever
from llm_engineering.domain.errors import ConfigurationError


class QAReference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    link: str = Field(min_length=1)
    kind: str | None = None
    author: str | None = None
    answer: str | None = None
    evidence: str | None = None


def load_qa_with_references(qa_path: str | Path, references_path: str | Path | None = None) -> list[QAReference]:
    """The QA set, with `answer`/`evidence` joined from `references_path` by question (when given)."""
    qa_path = Path(qa_path)
    rows = read_jsonl_objects(qa_path, f"QA file {qa_path} does not exist")
    if not rows:
        raise ConfigurationError(f"QA file {qa_path} holds no questions")
    extra: dict[str, dict[str, Any]] = {}
    if references_path:
        missing = f"reference answers file {references_path} does not exist"
        for row in read_jsonl_objects(Path(references_path), missing):
            if isinstance(row.get("question"), str):
                extra[row["question"].strip()] = row
    items = []
    for number, row in enumerate(rows, start=1):
        joined = {**row}
        ref = extra.get(str(row.get("question", "")).strip())
        if ref:
            joined.setdefault("answer", ref.get("answer"))
            joined.setdefault("evidence", ref.get("evidence"))
        try:
            items.append(QAReference.model_validate(joined))
        except ValidationError as exc:
            raise ConfigurationError(f"{qa_path} line {number}: {exc.errors()[0]['msg']}") from exc
    return items


def select_questions(items: Sequence[QAReference], kinds: Sequence[str], limit: int | None) -> list[QAReference]:
    """Questions the models answer: those with a reference answer, of the configured kinds (empty: every kind), at
    most `limit` (None: all)."""
    chosen = [q for q in items if q.answer and (not kinds or (q.kind or "") in kinds)]
    return chosen if limit is None else chosen[:limit]


def reference_contexts(retriever: Retriever, item: QAReference, k: int = 8) -> list[str]:
    """Chunks of the source document that hold the evidence (or, without evidence, its best chunk for the
    question): the reference contexts of Ragas' non-LLM context metrics."""
    target = normalize_link(item.link)
    if item.evidence:
        result = retriever.search(item.evidence, k=k, author=item.author)
        needle = " ".join(item.evidence.split())[:120]
        found = [
            h.chunk.text
            for h in result.hits
            if normalize_link(h.chunk.link) == target and needle in " ".join(h.chunk.text.split())
        ]
        if found:
            return found[:2]
    result = retriever.search(item.question, k=k * 3, author=item.author)
    same = [h.chunk.text for h in result.hits if normalize_link(h.chunk.link) == target]
    return same[:1]
