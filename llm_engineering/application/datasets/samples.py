"""From kept (instruction, extract) pairs to rows: instruct samples (a share of them in the exact RAG inference
shape, citing their source), preference pairs, and a deterministic split by source document."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

from llm_engineering.application.ports import PromptTokenCounter
from llm_engineering.domain.datasets import Candidate, DatasetSample, Extract, Passage, PreferencePair
from llm_engineering.domain.prompts import (
    ContextPassage,
    build_sft_messages,
    cite_source,
    format_passage,
    preference_prompt,
)


class SampleConfig(BaseModel):
    with_context_share: float = Field(default=0.3, ge=0, le=1, description="Share of samples built with context")
    context_passages: int = Field(default=3, ge=1, description="Passages in a with-context sample (source first "
                                  "counted), as the RAG service's k")  # fmt: skip
    context_max_tokens: int = Field(default=1024, ge=1, description="Context budget (base-model tokens)")
    test_share: float = Field(default=0.2, ge=0, lt=1)
    seed: int = 42


def _unit(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) from the seed and the parts."""
    digest = hashlib.sha256("\0".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def wants_context(candidate: Candidate, config: SampleConfig) -> bool:
    return _unit(config.seed, "context", candidate.extract_key, candidate.instruction) < config.with_context_share


def context_passages(
    extract: Extract, distractors: Sequence[Passage], config: SampleConfig, counter: PromptTokenCounter, key: str
) -> tuple[list[ContextPassage], int]:
    """The source extract plus retrieved distractors within the budget, shuffled (seeded); and the source's number."""
    chosen = [Passage(title=extract.title, author=extract.author, link=extract.link, text=extract.text)]
    used = counter.count(format_passage(_numbered(chosen[0], 1)))
    for passage in distractors:
        if len(chosen) >= config.context_passages:
            break
        cost = counter.count(format_passage(_numbered(passage, len(chosen) + 1))) + 2
        if used + cost > config.context_max_tokens:
            continue
        chosen.append(passage)
        used += cost
    order = list(range(len(chosen)))
    random.Random(int(_unit(config.seed, "shuffle", key) * 2**32)).shuffle(order)
    passages = [_numbered(chosen[i], number) for number, i in enumerate(order, start=1)]
    return passages, order.index(0) + 1


def _numbered(passage: Passage, number: int) -> ContextPassage:
    return ContextPassage(number=number, title=passage.title, author=passage.author, link=passage.link,
                          text=passage.text)  # fmt: skip


def instruct_sample(
    candidate: Candidate, extract: Extract, config: SampleConfig, counter: PromptTokenCounter
) -> DatasetSample:
    """The extract is the answer; with context, the answer cites the passage it is (the source, as [n])."""
    common = {
        "instruction": candidate.instruction,
        "source_link": extract.link,
        "author": extract.author,
        "document_id": str(extract.document_id),
        "title": extract.title,
        "judge_score": candidate.judge_score,
    }
    if wants_context(candidate, config):
        passages, source_number = context_passages(
            extract, candidate.distractors, config, counter, f"{candidate.extract_key}\0{candidate.instruction}"
        )
        answer = cite_source(extract.text.strip(), source_number)
        messages = build_sft_messages(candidate.instruction, answer, passages)
        return DatasetSample(
            answer=answer,
            messages=messages,
            with_context=True,
            context_links=[p.link for p in passages],
            **common,
        )
    answer = extract.text.strip()
    return DatasetSample(answer=answer, messages=build_sft_messages(candidate.instruction, answer), **common)


def preference_pair(candidate: Candidate, extract: Extract, rejected: str) -> PreferencePair:
    """chosen = the author's extract, rejected = the base model's answer; prompt = the twin's no-context chat."""
    return PreferencePair(
        prompt=preference_prompt(candidate.instruction),
        chosen=extract.text.strip(),
        rejected=rejected.strip(),
        source_link=extract.link,
        author=extract.author,
        instruction=candidate.instruction,
        document_id=str(extract.document_id),
    )


def split_documents(documents_by_author: Mapping[str, Iterable[str]], test_share: float, seed: int) -> set[str]:
    """The document ids that go to test. Per author, documents are ordered by a seeded hash and the first
    round(share × n) go to test (at least one when the author has two or more and share > 0, never all)."""
    test: set[str] = set()
    for author, ids in sorted(documents_by_author.items()):
        ordered = sorted(set(ids), key=lambda d: _unit(seed, "split", author, d))
        if test_share <= 0 or len(ordered) < 2:
            continue
        count = min(len(ordered) - 1, max(1, math.floor(test_share * len(ordered) + 0.5)))
        test.update(ordered[:count])
    return test
