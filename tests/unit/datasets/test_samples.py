"""Instruct samples (with and without context), preference pairs and the split by source document."""

from __future__ import annotations

import uuid

from llm_engineering.application.datasets.samples import (
    SampleConfig,
    instruct_sample,
    preference_pair,
    split_documents,
    wants_context,
)
from llm_engineering.domain.datasets import Candidate, Extract, Passage
from llm_engineering.domain.prompts import TWIN_SYSTEM_PROMPT, build_sft_messages, cited_numbers, preference_prompt
from tests.fakes import WordCounter

EXTRACT = Extract(
    document_id=uuid.uuid4(),
    position=0,
    text="Reciprocal rank fusion adds one over sixty plus the rank from each list.",
    token_count=13,
    author="Ada Lovelace",
    link="https://example.org/ada/fusion",
    title="Hybrid search",
    category="articles",
)
DISTRACTORS = [
    Passage(title=f"Other {i}", author="Ada Lovelace", link=f"https://example.org/ada/{i}", text=f"Other text {i}.")
    for i in range(4)
]


def candidate(instruction: str = "How does rank fusion combine two lists?") -> Candidate:
    return Candidate(instruction=instruction, extract_key=EXTRACT.key, distractors=DISTRACTORS)


def test_without_context_the_answer_is_the_extract_in_the_twin_chat_shape():
    sample = instruct_sample(candidate(), EXTRACT, SampleConfig(with_context_share=0.0), WordCounter())
    assert sample.answer == EXTRACT.text and not sample.with_context
    assert sample.messages == build_sft_messages(sample.instruction, EXTRACT.text)
    assert sample.source_link == EXTRACT.link and sample.author == "Ada Lovelace"


def test_with_context_the_answer_cites_its_source_among_shuffled_distractors():
    config = SampleConfig(with_context_share=1.0, context_passages=3)
    positions = set()
    for i in range(12):
        sample = instruct_sample(candidate(f"How does rank fusion combine lists, case {i}?"), EXTRACT, config,
                                 WordCounter())  # fmt: skip
        assert sample.with_context and len(sample.context_links) == 3
        assert sample.messages[0]["content"] == TWIN_SYSTEM_PROMPT
        user = sample.messages[1]["content"]
        number = sample.context_links.index(EXTRACT.link) + 1
        assert f"[{number}] Hybrid search (Ada Lovelace)\n{EXTRACT.text}" in user
        assert sample.answer == f"{EXTRACT.text} [{number}]"
        assert cited_numbers(sample.answer, 3) == [number]
        assert sample.messages[-1] == {"role": "assistant", "content": sample.answer}
        assert user.endswith(f"Question: {sample.instruction}")
        positions.add(number)
    assert len(positions) > 1  # the source is not always first


def test_context_respects_the_token_budget():
    config = SampleConfig(with_context_share=1.0, context_passages=5, context_max_tokens=30)
    sample = instruct_sample(candidate(), EXTRACT, config, WordCounter())
    assert EXTRACT.link in sample.context_links and len(sample.context_links) < 5


def test_the_share_of_context_samples_follows_the_config_and_is_deterministic():
    config = SampleConfig(with_context_share=0.3, seed=1)
    chosen = [wants_context(candidate(f"Question number {i}?"), config) for i in range(1000)]
    assert 0.25 < sum(chosen) / 1000 < 0.35
    assert chosen == [wants_context(candidate(f"Question number {i}?"), config) for i in range(1000)]


def test_preference_pair_prefers_the_author_over_the_base_model():
    pair = preference_pair(candidate(), EXTRACT, "  Fusion is a generic technique.  ")
    assert pair.prompt == preference_prompt(pair.instruction) == build_sft_messages(pair.instruction, "x")[:-1]
    assert pair.prompt[-1] == {"role": "user", "content": pair.instruction}
    assert pair.chosen == EXTRACT.text and pair.rejected == "Fusion is a generic technique."
    assert pair.source_link == EXTRACT.link


def test_split_by_document_is_deterministic_sized_and_per_author():
    docs = {"Ada": [f"a{i}" for i in range(10)], "Grace": [f"g{i}" for i in range(5)], "Solo": ["s0"]}
    test = split_documents(docs, 0.2, seed=42)
    assert len(test & set(docs["Ada"])) == 2 and len(test & set(docs["Grace"])) == 1
    assert "s0" not in test  # one document: all train
    assert split_documents(docs, 0.2, seed=42) == test
    assert split_documents(docs, 0.2, seed=7) != test
    assert split_documents({"Ada": ["a0", "a1"]}, 0.9, seed=1) != {"a0", "a1"}  # never all of them
    assert split_documents(docs, 0.0, seed=1) == set()
