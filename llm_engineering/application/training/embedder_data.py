"""The embedder's training data and its evaluation, from a generated dataset and the author's indexed passages.

A generated instruct sample is a question the LLM wrote for one of the author's extracts (back-translation,
docs/datasets.md). Here it becomes a retrieval example: the *query* is the question, the *positive* is the indexed
passage of its source document that holds most of the answer (the text the index embeds: title + chunk), and the
*negatives* are passages of other documents that the current index ranks high for that question (hard negatives;
never a passage of the positive's own document). Test-split questions measure a model: documents ranked by their
best passage's cosine, hit@k and MRR@10 of the source document, as the retrieval evaluation counts them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llm_engineering.application.ports import ChunkTokenizer, Retriever
from llm_engineering.application.preprocessing.chunking import (
    DEFAULT_CHUNKING,
    ChunkingParams,
    chunk_document,
    index_text,
)
from llm_engineering.domain.chunks import CleanedDocument
from llm_engineering.domain.prompts import without_citations
from llm_engineering.domain.types import DataCategory

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Passage:
    text: str  # what the index embeds: the title prefix + the chunk
    link: str
    author: str


@dataclass
class EmbedderExample:
    query: str
    positive: str
    link: str
    negatives: list[str] = field(default_factory=list)


@dataclass
class ExampleReport:
    samples: int = 0
    examples: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "examples": self.examples, "dropped": dict(self.dropped)}


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def corpus_passages(
    documents: Iterable[CleanedDocument],
    tokenizer: ChunkTokenizer,
    chunking: dict[DataCategory, ChunkingParams] | None = None,
) -> list[Passage]:
    """Every document's chunks as the feature pipeline indexes them (same chunker, same index text)."""
    chunking = chunking or DEFAULT_CHUNKING
    passages = []
    for document in documents:
        params = chunking[document.category]
        for chunk in chunk_document(document, tokenizer, params):
            passages.append(Passage(index_text(chunk, params), chunk.link, chunk.author_full_name))
    return passages


def _norm_link(link: str) -> str:
    return link.strip().rstrip("/")


def build_examples(
    rows: Sequence[dict[str, Any]],
    passages: Sequence[Passage],
    retriever: Retriever | None = None,
    negatives: int = 1,
    min_answer_overlap: float = 0.5,
    search_depth: int = 20,
) -> tuple[list[EmbedderExample], ExampleReport]:
    """One example per distinct question whose answer is found in a passage of its source document.

    The positive is the source's passage sharing the largest share of the answer's words (at least
    `min_answer_overlap`: a sample answering that the sources do not cover the question has no positive and is
    dropped). With a `retriever`, `negatives` hard negatives per example: the first passages of other documents in
    its hybrid ranking of the question (no author filter), in rank order.
    """
    by_link: dict[str, list[Passage]] = defaultdict(list)
    for passage in passages:
        by_link[_norm_link(passage.link)].append(passage)
    texts_by_link = {link: {p.text for p in group} for link, group in by_link.items()}
    report = ExampleReport()
    examples: list[EmbedderExample] = []
    seen: set[str] = set()
    for row in rows:
        report.samples += 1
        query = str(row.get("instruction") or "").strip()
        link = _norm_link(str(row.get("source_link") or ""))
        if not query or query.lower() in seen:
            report.dropped["duplicate_or_empty_question"] += 1
            continue
        candidates = by_link.get(link)
        if not candidates:
            report.dropped["source_not_indexed"] += 1
            continue
        answer = _words(without_citations(str(row.get("answer") or "")))
        if not answer:
            report.dropped["empty_answer"] += 1
            continue
        overlap, positive = max(((len(answer & _words(p.text)) / len(answer), p) for p in candidates),
                                key=lambda pair: pair[0])  # fmt: skip
        if overlap < min_answer_overlap:
            report.dropped["answer_not_in_source"] += 1
            continue
        seen.add(query.lower())
        example = EmbedderExample(query=query, positive=positive.text, link=link)
        if retriever is not None and negatives > 0:
            own = texts_by_link[link]
            for hit in retriever.search(query, k=search_depth, mode="hybrid").hits:
                if _norm_link(hit.chunk.link) == link:
                    continue
                text = index_text(hit.chunk)
                if text not in own and text not in example.negatives:
                    example.negatives.append(text)
                if len(example.negatives) == negatives:
                    break
            if len(example.negatives) < negatives:
                report.dropped["too_few_negatives"] += 1
                continue
        examples.append(example)
    report.examples = len(examples)
    return examples, report


def evaluate_examples(
    encode: Callable[[Sequence[str]], Any],
    examples: Sequence[EmbedderExample],
    passages: Sequence[Passage],
    k: int = 10,
) -> dict[str, float]:
    """Dense retrieval over `passages` with the model behind `encode` (normalised vectors): documents ranked by
    their best passage; hit@1, hit@5, hit@k and MRR@k of each example's source document."""
    import numpy as np

    if not examples:
        return {"questions": 0}
    corpus = np.asarray(encode([p.text for p in passages]), dtype=np.float32)
    queries = np.asarray(encode([e.query for e in examples]), dtype=np.float32)
    links = [_norm_link(p.link) for p in passages]
    scores = queries @ corpus.T
    ranks: list[int | None] = []
    for row, example in zip(scores, examples, strict=True):
        order: list[str] = []
        for index in np.argsort(-row):
            if links[index] not in order:
                order.append(links[index])
                if len(order) == k:
                    break
        ranks.append(order.index(example.link) + 1 if example.link in order else None)
    n = len(ranks)
    result = {"questions": n}
    for cut in sorted({1, 5, k}):
        result[f"hit@{cut}"] = round(sum(1 for r in ranks if r is not None and r <= cut) / n, 4)
    result[f"mrr@{k}"] = round(sum(1.0 / r for r in ranks if r is not None) / n, 4)
    return result
