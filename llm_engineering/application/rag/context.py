"""Merge the hits of several queries, de-duplicate, and assemble the top-k context within the token budget."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from llm_engineering.application.ports import PromptTokenCounter
from llm_engineering.application.rag.fusion import reciprocal_rank_fusion
from llm_engineering.domain.chunks import RetrievalResult, RetrievedChunk
from llm_engineering.domain.prompts import ContextPassage, format_passage

# Below this many tokens a truncated passage is more noise than help: stop instead.
MIN_PASSAGE_TOKENS = 32
PASSAGE_SEPARATOR_TOKENS = 2  # the blank line between passages


_SPACES = re.compile(r"\s+")


def _text_key(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def merge_results(results: Sequence[RetrievalResult]) -> list[RetrievedChunk]:
    """Fuse the rankings of the expanded queries (reciprocal rank fusion) into one list, best first.

    Duplicates collapse: the same chunk id from several queries, and chunks with identical text (the same
    passage stored twice, e.g. a re-published post). The score of a merged hit is its fused RRF score.
    """
    by_key: dict[str, RetrievedChunk] = {}
    rankings: list[list[str]] = []
    for result in results:
        ranking: list[str] = []
        for hit in result.hits:
            key = _text_key(hit.chunk.text)
            by_key.setdefault(key, hit)
            if key not in ranking:
                ranking.append(key)
        rankings.append(ranking)
    fused = reciprocal_rank_fusion(rankings)
    return [
        by_key[key].model_copy(update={"score": score, "rank": rank, "mode": "fused"})
        for rank, (key, score) in enumerate(fused, start=1)
    ]


@dataclass
class AssembledContext:
    passages: list[ContextPassage]
    hits: list[RetrievedChunk]  # aligned with passages
    context_tokens: int
    budget_tokens: int
    truncated: bool = False
    dropped: int = 0  # candidates left out (over k or over budget)
    counter: str = ""
    notes: list[str] = field(default_factory=list)


def context_budget(max_model_len: int, answer_tokens: int, prompt_tokens_without_context: int, margin: int = 16) -> int:
    """Tokens left for context: window − room for the answer − the rest of the prompt − a safety margin."""
    return max(0, max_model_len - answer_tokens - prompt_tokens_without_context - margin)


def assemble_context(
    hits: Sequence[RetrievedChunk], k: int, budget_tokens: int, counter: PromptTokenCounter
) -> AssembledContext:
    """Take hits in rank order until k passages or the budget is reached; the last one may be truncated."""
    passages: list[ContextPassage] = []
    kept: list[RetrievedChunk] = []
    used = 0
    truncated = False
    for hit in hits:
        if len(passages) >= k:
            break
        chunk = hit.chunk
        passage = ContextPassage(
            number=len(passages) + 1,
            title=chunk.title,
            author=chunk.author_full_name,
            link=chunk.link,
            text=chunk.text,
        )
        cost = counter.count(format_passage(passage)) + (PASSAGE_SEPARATOR_TOKENS if passages else 0)
        remaining = budget_tokens - used
        if cost > remaining:
            header_cost = cost - counter.count(chunk.text)
            room = remaining - header_cost
            if room < MIN_PASSAGE_TOKENS:
                break
            passage = ContextPassage(**{**passage.__dict__, "text": counter.truncate(chunk.text, room)})
            cost = counter.count(format_passage(passage)) + (PASSAGE_SEPARATOR_TOKENS if passages else 0)
            truncated = True
        passages.append(passage)
        kept.append(hit)
        used += cost
        if truncated:
            break
    return AssembledContext(
        passages=passages,
        hits=kept,
        context_tokens=used,
        budget_tokens=budget_tokens,
        truncated=truncated,
        dropped=len(hits) - len(kept),
        counter=counter.name,
    )
