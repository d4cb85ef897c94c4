"""Retrieval evaluation: hit@r and MRR@k per retrieval mode, overall and per question kind.

A QA item names the document that answers it (`link`). Hits are ranked by document: each document counts
once, at the rank of its best chunk, so a question is a hit at rank r when the document with that link is
the r-th distinct document retrieved.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_engineering.application.ports import Retriever
from llm_engineering.application.rag.fusion import dedupe_by_document
from llm_engineering.domain.chunks import RetrievalResult
from llm_engineering.domain.errors import ConfigurationError

CUTOFFS = (1, 5, 10)
CHUNKS_PER_DOCUMENT = 5  # fetch k × this many chunks so that k distinct documents remain after dedupe


class QAItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    link: str = Field(min_length=1)
    author: str | None = None
    kind: str | None = None


def load_qa(path: str | Path) -> list[QAItem]:
    """JSONL, one object per line with at least `question` and `link`; unknown fields are ignored."""
    path = Path(path)
    if not path.exists():
        raise ConfigurationError(f"QA file {path} does not exist")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(QAItem.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ConfigurationError(f"{path} line {number}: {exc}") from exc
    if not items:
        raise ConfigurationError(f"QA file {path} holds no questions")
    return items


def normalize_link(link: str) -> str:
    return link.strip().rstrip("/")


def rank_of(result: RetrievalResult, link: str, k: int) -> int | None:
    """1-based rank of the document with `link` among the first k distinct documents, or None."""
    target = normalize_link(link)
    for hit in dedupe_by_document(result.hits)[:k]:
        if normalize_link(hit.chunk.link) == target:
            return hit.rank
    return None


def metrics(ranks: Sequence[int | None], k: int) -> dict[str, float]:
    n = len(ranks)
    out: dict[str, float] = {"questions": n}
    for cutoff in sorted({*CUTOFFS, k}):
        if cutoff <= k:
            out[f"hit@{cutoff}"] = sum(1 for r in ranks if r is not None and r <= cutoff) / n if n else 0.0
    out[f"mrr@{k}"] = sum(1.0 / r for r in ranks if r is not None and r <= k) / n if n else 0.0
    return out


class RetrievalEvaluation(BaseModel):
    k: int
    modes: list[str]
    overall: dict[str, dict[str, float]]  # mode -> metrics
    per_kind: dict[str, dict[str, dict[str, float]]]  # kind -> mode -> metrics
    rows: list[dict[str, Any]] = Field(default_factory=list, exclude=True)
    metadata: dict[str, Any] = Field(default_factory=dict)


def evaluate_retrieval(
    retriever: Retriever, items: Iterable[QAItem], k: int = 10, modes: Sequence[str] = ("dense", "sparse", "hybrid")
) -> RetrievalEvaluation:
    items = list(items)
    ranks: dict[str, list[int | None]] = defaultdict(list)
    kind_ranks: dict[str, dict[str, list[int | None]]] = defaultdict(lambda: defaultdict(list))
    rows: list[dict[str, Any]] = []
    for item in items:
        for mode in modes:
            result = retriever.search(item.question, k=k * CHUNKS_PER_DOCUMENT, author=item.author, mode=mode)
            rank = rank_of(result, item.link, k)
            ranks[mode].append(rank)
            kind_ranks[item.kind or "unspecified"][mode].append(rank)
            top = dedupe_by_document(result.hits)[:1]
            rows.append(
                {
                    "question": item.question,
                    "link": item.link,
                    "kind": item.kind or "",
                    "author": item.author or "",
                    "mode": mode,
                    "rank": rank or "",
                    **{f"hit@{c}": int(rank is not None and rank <= c) for c in CUTOFFS if c <= k},
                    "reciprocal_rank": round(1.0 / rank, 4) if rank else 0.0,
                    "top_link": top[0].chunk.link if top else "",
                }
            )
    return RetrievalEvaluation(
        k=k,
        modes=list(modes),
        overall={mode: metrics(ranks[mode], k) for mode in modes},
        per_kind={kind: {mode: metrics(r[mode], k) for mode in modes} for kind, r in sorted(kind_ranks.items())},
        rows=rows,
    )


def write_evaluation(evaluation: RetrievalEvaluation, output: str | Path) -> tuple[Path, Path]:
    """The metrics as JSON at `output`, the per-question rows as CSV beside it (same name, .csv)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(evaluation.model_dump(), indent=2) + "\n", encoding="utf-8")
    csv_path = output.with_suffix(".csv")
    if evaluation.rows:
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(evaluation.rows[0]))
            writer.writeheader()
            writer.writerows(evaluation.rows)
    return output, csv_path
