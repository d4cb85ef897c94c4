"""Each filter on hand-made cases."""

from __future__ import annotations

import pytest

from llm_engineering.application.datasets.filters import (
    FilterConfig,
    NearDuplicateIndex,
    clean_instruction,
    copies_answer,
    dedupe,
    instruction_length_ok,
    ngram_overlap,
    rejected_problem,
    speaks_of_source,
    well_formed,
)
from llm_engineering.application.datasets.generation import parse_questions, parse_score

ANSWER = (
    "Reciprocal rank fusion adds one over sixty plus the rank from each list, so BM25 and dense retrieval never "
    "need tuned weights."
)


@pytest.mark.parametrize(
    "instruction",
    [
        "What does the passage say about rank fusion?",
        "According to the author, why is BM25 useful?",
        "Summarize this text in one sentence.",
        "What is the main point of the article?",
        "What does the given excerpt recommend?",
    ],
)
def test_questions_about_an_unseen_text_are_flagged(instruction):
    assert speaks_of_source(instruction)


@pytest.mark.parametrize(
    "instruction",
    [
        "How does reciprocal rank fusion combine BM25 and dense retrieval?",
        "Should I clean text before chunking it?",  # "text" alone is fine; "the text" is not
        "How do I split text into chunks of 256 tokens?",
        "Which passages should a reranker score first?",  # plural, not "the passage"
    ],
)
def test_natural_questions_pass(instruction):
    assert not speaks_of_source(instruction)


def test_copying_a_long_run_of_the_answer_is_flagged():
    assert copies_answer("Why does rank fusion add one over sixty plus the rank from each list?", ANSWER, 6)
    assert not copies_answer("How does reciprocal rank fusion avoid tuned weights?", ANSWER, 6)
    assert not copies_answer("Rank fusion?", ANSWER, 6)  # shorter than n words


def test_length_bounds_count_words():
    config = FilterConfig(min_instruction_words=4, max_instruction_words=8)
    assert not instruction_length_ok("Why fusion?", config)
    assert instruction_length_ok("Why does rank fusion work?", config)
    assert not instruction_length_ok("Why " + "very " * 10 + "long?", config)


def test_near_duplicate_instructions_are_found_at_the_threshold():
    kept = dedupe(
        [
            "How does reciprocal rank fusion combine rankings?",
            "How does reciprocal rank fusion combine the rankings?",  # Jaccard 6/7 = 0.86
            "how does Reciprocal Rank Fusion combine rankings",  # case and punctuation only
            "Why should embeddings stay out of MongoDB?",
        ],
        threshold=0.8,
    )
    assert kept == [True, False, False, True]
    assert dedupe(["a b c d e", "a b c d f"], threshold=0.8) == [True, True]  # 4/6 = 0.67


def test_near_duplicate_extracts_use_shingles():
    index = NearDuplicateIndex(0.8, shingle=3)
    first = ANSWER
    assert index.add(first)
    assert not index.add(first.replace("weights.", "weights at all."))  # one small edit
    assert index.add("Paged attention stores the key value cache in blocks so memory is not wasted on padding.")
    assert index.find(first) == 0


def test_prefix_filter_finds_every_pair_a_brute_force_finds():
    import itertools
    import random

    rng = random.Random(3)
    vocabulary = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.sample(vocabulary, rng.randint(3, 8))) for _ in range(200)]
    threshold = 0.7
    kept = dedupe(texts, threshold)
    chosen: list[set[str]] = []
    expected = []
    for text in texts:
        words = set(text.split())
        duplicate = any(len(words & other) / len(words | other) >= threshold for other in chosen)
        expected.append(not duplicate)
        if not duplicate:
            chosen.append(words)
    assert kept == expected
    assert list(itertools.compress(texts, kept))  # something survived


def test_rejected_answers_that_are_empty_or_copy_the_author_are_flagged():
    config = FilterConfig(max_rejected_overlap=0.5, rejected_overlap_ngram=4)
    assert rejected_problem("", ANSWER, config) == "rejected_empty"
    assert rejected_problem("  ...  ", ANSWER, config) == "rejected_empty"
    assert rejected_problem(ANSWER.upper(), ANSWER, config) == "rejected_overlap"
    copied = "Reciprocal rank fusion adds one over sixty plus the rank from each list, I think."
    assert ngram_overlap(copied, ANSWER, 4) > 0.5
    assert rejected_problem(copied, ANSWER, config) == "rejected_overlap"
    generic = "Rank fusion is a technique that can be used in many search systems to improve results."
    assert rejected_problem(generic, ANSWER, config) is None


def test_instruction_cleaning_and_parsing():
    assert clean_instruction('  1. "How does  fusion work?" ') == "How does fusion work?"
    assert clean_instruction("- Why?\n") == "Why?"
    assert parse_questions({"questions": ["How?", "How does it work?", "how does it work?", 3, ""]}, 2) == [
        "How?",
        "How does it work?",
    ]
    assert parse_questions(None, 2) == []
    assert parse_questions({"questions": "not a list"}, 2) == []
    assert parse_questions(["How does it work?"], 2) == []
    assert parse_score({"score": 4}) == 4
    assert parse_score({"score": 9}) is None and parse_score({"score": "4"}) is None and parse_score(None) is None


@pytest.mark.parametrize(
    ("instruction", "ok"),
    [
        ("How does rank fusion work?", True),
        ("Explain how rank fusion works.", True),
        ("What is the purpose of the", False),  # cut off
        ("How do I clean code? 1. Use a regex. 2. Use a parser?", False),  # a question and its own answers
        ("What is X? What is Y?", False),  # two questions
        ("The slowest 1% of traces, step by step", False),  # a statement
        ("Rank fusion is great.", False),
    ],
)
def test_one_question_or_request(instruction, ok):
    assert well_formed(instruction) is ok


def test_labels_and_run_on_text_are_removed():
    assert clean_instruction("First question: What is LoRA?") == "What is LoRA?"
    assert clean_instruction("Question 2: Why?") == "Why?"
    assert clean_instruction("How do I clean code? 1. Use a regex. 2. Use a parser?") == "How do I clean code?"
    assert clean_instruction("What is X? What is X? What is X?") == "What is X?"
    assert clean_instruction("What is the purpose of the") == "What is the purpose of the"  # still malformed
