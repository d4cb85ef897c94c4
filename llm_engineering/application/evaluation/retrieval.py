"""Retrieval evaluation: hit@r and MRR@k per retrieval mode, overall and per question kind.

A QA item names the document that answers it (`link`). Hits are ranked by document: each document counts
once, at the rank of its best chunk, so a question is a hit at rank r when the document with that link is
the r-th distinct document retrieved.

The author filter: a QA item's `author` is the gold author of a question that names one. By default
(`author_from="question"`) the question is searched without an explicit author, so the search service resolves
the filter from the question text exactly as `/search` and `/rag` do; the filter it applied, and how it was
found (`request` / `rule` / `none`), is recorded per question and compared with the gold author
(`RetrievalEvaluation.author_filter`). `author_from="qa"` passes the gold author as an explicit request instead
(an oracle filter: it measures ranking alone).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm.auto import tqdm

from llm_engineering.application.ports import Retriever
from llm_engineering.application.rag.fusion import dedupe_by_document
from llm_engineering.domain.chunks import RetrievalResult
from llm_engineering.domain.errors import ConfigurationError

CUTOFFS = (1, 5, 10)
CHUNKS_PER_DOCUMENT = 5  # fetch k × this many chunks so that k distinct documents remain after dedupe
AUTHOR_FROM = ("question", "qa")


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


def applied_filter(result: RetrievalResult, requested: str | None) -> tuple[str | None, str]:
    """The author filter a search applied and how it was found (request / rule / llm / none).

    The search service reports both in the metadata; a bare retriever only applies what it was given."""
    if "author_filter" in result.metadata:
        applied = result.metadata["author_filter"]
    else:  # a retriever that does not report it: what it says it searched, else what it was asked for
        applied = result.author_full_name or requested
    source = result.metadata.get("author_source") or ("request" if requested else "none")
    return applied or None, source if applied else "none"


def filter_outcome(gold: str | None, applied: str | None) -> str:
    """correct (the gold author, or no filter where none is named) | wrong_author | missing | unexpected."""
    same = (gold or "").casefold() == (applied or "").casefold()
    if same:
        return "correct"
    if gold and applied:
        return "wrong_author"
    return "missing" if gold else "unexpected"


def filter_summary(outcomes: Sequence[tuple[str | None, str]]) -> dict[str, float]:
    """Per group of questions: how often the filter applied was the right one. `(gold author, outcome)` pairs."""
    named = [outcome for gold, outcome in outcomes if gold]
    out: dict[str, float] = {
        "questions": len(outcomes),
        "author_named": len(named),
        "applied_correctly": sum(o == "correct" for o in named),
        "wrong_author": sum(o == "wrong_author" for o in named),
        "missing": sum(o == "missing" for o in named),
        "unexpected": sum(o == "unexpected" for _, o in outcomes),  # a filter on a question naming nobody
    }
    out["share_correct"] = out["applied_correctly"] / len(named) if named else 1.0
    return out


class RetrievalEvaluation(BaseModel):
    k: int
    modes: list[str]
    overall: dict[str, dict[str, float]]  # mode -> metrics
    per_kind: dict[str, dict[str, dict[str, float]]]  # kind -> mode -> metrics
    # "overall" and each kind -> questions naming an author, how many got exactly that author as the filter, ...
    author_filter: dict[str, dict[str, float]] = Field(default_factory=dict)
    author_from: str = "question"
    rows: list[dict[str, Any]] = Field(default_factory=list, exclude=True)
    metadata: dict[str, Any] = Field(default_factory=dict)


def evaluate_retrieval(
    retriever: Retriever,
    items: Iterable[QAItem],
    k: int = 10,
    modes: Sequence[str] = ("dense", "sparse", "hybrid"),
    author_from: str = "question",
    show_progress: bool = False,
) -> RetrievalEvaluation:
    """Rank every question in every mode. `author_from`: "question" (the service resolves the filter from the
    question, as /search and /rag do) or "qa" (the item's gold author is requested explicitly). A progress bar
    counts questions (the rerank mode takes seconds each on a CPU)."""
    if author_from not in AUTHOR_FROM:
        raise ValueError(f"author_from must be one of {AUTHOR_FROM}")
    items = list(items)
    ranks: dict[str, list[int | None]] = defaultdict(list)
    kind_ranks: dict[str, dict[str, list[int | None]]] = defaultdict(lambda: defaultdict(list))
    outcomes: dict[str, list[tuple[str | None, str]]] = defaultdict(list)  # kind -> (gold, outcome), first mode
    rows: list[dict[str, Any]] = []
    for item in tqdm(items, desc="Evaluating retrieval", unit="question", disable=not show_progress):
        kind = item.kind or "unspecified"
        requested = item.author if author_from == "qa" else None
        for position, mode in enumerate(modes):
            result = retriever.search(item.question, k=k * CHUNKS_PER_DOCUMENT, author=requested, mode=mode)
            rank = rank_of(result, item.link, k)
            ranks[mode].append(rank)
            kind_ranks[kind][mode].append(rank)
            applied, source = applied_filter(result, requested)
            outcome = filter_outcome(item.author, applied)
            if position == 0:  # the filter is resolved before the mode matters: count each question once
                outcomes[kind].append((item.author, outcome))
            top = dedupe_by_document(result.hits)[:1]
            rows.append(
                {
                    "question": item.question,
                    "link": item.link,
                    "kind": item.kind or "",
                    "author": item.author or "",  # the gold author (questions that name one)
                    "requested_author": requested or "",
                    "applied_filter": applied or "",
                    "filter_source": source,
                    "filter_outcome": outcome,
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
        author_filter={
            "overall": filter_summary([o for kind_outcomes in outcomes.values() for o in kind_outcomes]),
            **{kind: filter_summary(o) for kind, o in sorted(outcomes.items())},
        },
        author_from=author_from,
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
