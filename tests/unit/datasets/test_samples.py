"""Instruct samples (with and without context), preference pairs and the split by source document."""

from __future__ import annotations

import uuid

from llm_engineering.application.datasets.samples import (
    SampleConfig,
    answer_span,
    context_preference_pair,
    context_prompt,
    header_preference_pair,
    instruct_sample,
    preference_pair,
    split_documents,
    wants_context,
)
from llm_engineering.domain.datasets import Candidate, Extract, Passage
from llm_engineering.domain.prompts import (
    TWIN_SYSTEM_PROMPT,
    UNANSWERED_ANSWER,
    build_sft_messages,
    cited_numbers,
    preference_prompt,
)
from tests.fakes import WordCounter

EXTRACT = Extract(
    document_id=uuid.uuid5(uuid.NAMESPACE_URL, "https://example.org/ada/fusion"),  # fixed: shares are seeded by it
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
    config = SampleConfig(with_context_share=1.0, context_passages=3, unanswerable_share=0.0)
    positions = set()
    for i in range(12):
        sample = instruct_sample(candidate(f"How does rank fusion combine lists, case {i}?"), EXTRACT, config,
                                 WordCounter())  # fmt: skip
        assert sample.with_context and len(sample.context_links) == 3
        assert sample.messages[0]["content"] == TWIN_SYSTEM_PROMPT
        user = sample.messages[1]["content"]
        number = sample.context_links.index(EXTRACT.link) + 1
        assert f"[{number}] Hybrid search (Ada Lovelace)\n{EXTRACT.text}" in user
        assert sample.answer == f"{EXTRACT.text.removesuffix('.')} [{number}]."  # the first sentence cites it
        assert cited_numbers(sample.answer, 3) == [number]
        assert sample.messages[-1] == {"role": "assistant", "content": sample.answer}
        assert user.endswith(f"Question: {sample.instruction}")
        positions.add(number)
    assert len(positions) > 1  # the source is not always first


def test_context_respects_the_token_budget():
    config = SampleConfig(with_context_share=1.0, context_passages=5, context_max_tokens=30, unanswerable_share=0.0)
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


def test_a_document_keeps_its_side_and_new_writing_is_held_out_too():
    first = {"Ada": [f"a{i}" for i in range(10)]}
    test = split_documents(first, 0.2, seed=42)
    previous = {d: ("test" if d in test else "train") for d in first["Ada"]}
    grown = {"Ada": first["Ada"] + ["new1", "new2", "new3"]}
    again = split_documents(grown, 0.2, seed=42, previous=previous)
    assert again & set(first["Ada"]) == test  # nothing moves between sides
    assert len(again - test) == 1  # round(0.2 x 3) new documents, at least one: the new writing is measurable


ARTICLE = """## Why tokens

Models read tokens, not characters. A chunk of 1,000 characters can be 200 or 400 tokens, so a character budget
overflows the window.

```python
chunks = split(text, 256)
```

That is why I chunk by tokens."""


def test_the_answer_span_is_the_authors_sentences_that_answer_without_headings_or_code():
    span = answer_span("Why chunk by tokens rather than characters?", ARTICLE, max_words=40)
    assert span.startswith("A chunk of 1,000 characters") and span.endswith("overflows the window.")
    assert "#" not in span and "split(" not in span and "That is why" not in span  # code breaks the run
    assert " ".join(span.split()) in " ".join(ARTICLE.split())  # verbatim words
    assert answer_span("Show the code that splits text", ARTICLE) == ARTICLE.strip()  # code asked for: kept
    assert answer_span("Why?", "```\nx = 1\n```") == "```\nx = 1\n```"


def test_unanswerable_samples_leave_the_source_out_and_say_so():
    config = SampleConfig(with_context_share=1.0, unanswerable_share=1.0, context_passages=3)
    sample = instruct_sample(candidate(), EXTRACT, config, WordCounter())
    assert sample.kind == "unanswerable" and sample.answer == UNANSWERED_ANSWER
    assert EXTRACT.link not in sample.context_links and len(sample.context_links) == 3
    prompt, number, _ = context_prompt(candidate(), EXTRACT, config, WordCounter())
    assert number is None and prompt == sample.messages[:-1]


def test_with_context_pairs_keep_only_what_the_base_model_gets_wrong():
    config = SampleConfig(with_context_share=1.0, unanswerable_share=0.0, context_passages=3)
    sample = instruct_sample(candidate(), EXTRACT, config, WordCounter())
    number = sample.context_links.index(EXTRACT.link) + 1
    header = f"[{number}] Hybrid search (Ada Lovelace)"

    def pair_for(rejected: str):
        return context_preference_pair(candidate().model_copy(update={"context_rejected": rejected}), sample)

    looping = "Fusion adds ranks from lists. " * 3
    assert pair_for(looping).rejected_problem == "loops"
    assert pair_for(header + "\nReciprocal rank fusion").rejected_problem == "copied_header"
    assert pair_for("").rejected_problem == "empty"
    assert pair_for("Fusion is a generic technique for lists.").rejected_problem == "no_citation"
    other = 1 if number != 1 else 2
    assert pair_for(f"Reciprocal rank fusion adds one over sixty plus the rank [{other}].").rejected_problem == (
        "wrong_source"
    )
    good = pair_for(f"Reciprocal rank fusion adds one over sixty plus the rank from each list [{number}].")
    assert good is None  # a fair answer is no rejected side
    pair = pair_for("")
    assert pair.chosen == sample.answer and pair.prompt == sample.messages[:-1] and pair.kind == "with_context"


def test_a_cited_span_gets_a_pair_against_pasting_its_source_header():
    config = SampleConfig(with_context_share=1.0, unanswerable_share=0.0, context_passages=3)
    sample = instruct_sample(candidate(), EXTRACT, config, WordCounter())
    number = sample.context_links.index(EXTRACT.link) + 1
    pair = header_preference_pair(sample)
    assert pair.chosen == sample.answer and pair.prompt == sample.messages[:-1]
    assert pair.rejected.splitlines()[0] == f"[{number}] Hybrid search (Ada Lovelace)"
    assert pair.rejected.splitlines()[1] == sample.answer.replace(f" [{number}]", "")  # pasted, citing nothing
    assert pair.kind == "with_context" and pair.rejected_problem == "pasted_header"
    # only a span citing its source gets one
    unanswerable = SampleConfig(with_context_share=1.0, unanswerable_share=1.0, context_passages=3)
    assert header_preference_pair(instruct_sample(candidate(), EXTRACT, unanswerable, WordCounter())) is None
    plain = SampleConfig(with_context_share=0.0)
    assert header_preference_pair(instruct_sample(candidate(), EXTRACT, plain, WordCounter())) is None


def test_a_span_cites_its_first_sentence():
    from llm_engineering.domain.prompts import cite_first_sentence

    sentences = ["The model reads 256 tokens.", "Anything longer is cut!", "Count in tokens"]
    cited = cite_first_sentence(sentences, 2)
    assert cited == "The model reads 256 tokens [2]. Anything longer is cut! Count in tokens"
    assert cite_first_sentence(['He said "chunk by tokens."'], 1) == 'He said "chunk by tokens [1]."'
    assert cite_first_sentence(["def f(): pass"], 3) == "def f(): pass [3]"  # code, no closing mark: at the end


def test_an_extract_answer_does_not_open_with_its_heading():
    from llm_engineering.application.datasets.samples import without_headings

    assert without_headings("## Sizes\n\nThe warehouse is 2.1 GB.\n\n## Next\n\nMore.") == (
        "The warehouse is 2.1 GB.\n\n## Next\n\nMore."  # one contiguous run of the author's text
    )
    assert without_headings("# Only a heading") == "# Only a heading"
    extract = EXTRACT.model_copy(update={"text": "## Fusion\n\n" + EXTRACT.text})
    sample = instruct_sample(candidate(), extract, SampleConfig(with_context_share=0.0), WordCounter())
    assert sample.answer == EXTRACT.text and preference_pair(candidate(), extract, "No.").chosen == EXTRACT.text
