"""Rank fusion and per-document de-duplication (pure functions)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

from llm_engineering.domain.chunks import RetrievedChunk
from llm_engineering.domain.vectors import RRF_K

T = TypeVar("T", bound=Hashable)


def reciprocal_rank_fusion(rankings: Iterable[Sequence[T]], k: int = RRF_K) -> list[tuple[T, float]]:
    """Fuse rankings (best first) into one: score(item) = Σ 1 / (k + rank), rank 1-based. Ties keep first-seen."""
    scores: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def dedupe_by_document(hits: Sequence[RetrievedChunk]) -> list[RetrievedChunk]:
    """Keep each document's best chunk, in order, and re-rank 1..n (several chunks of one doc count once)."""
    seen: set[str] = set()
    out: list[RetrievedChunk] = []
    for hit in hits:
        key = str(hit.chunk.document_id)
        if key in seen:
            continue
        seen.add(key)
        out.append(hit.model_copy(update={"rank": len(out) + 1}))
    return out
