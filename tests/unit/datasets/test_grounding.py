"""The independent grounding checker (word 8-grams of the answer found in the source document)."""

from __future__ import annotations

from llm_engineering.application.datasets.grounding import grounded_share, grounding_summary

SOURCE = (
    "## Fusion\n\nReciprocal rank fusion adds one over sixty plus the rank from each list, so BM25 and dense "
    "retrieval never need tuned weights.\n\nA document ranked high twice wins."
)


def test_verbatim_text_is_fully_grounded_whatever_the_spacing_case_and_citation():
    answer = "Reciprocal rank fusion adds one over sixty plus the rank from each list,\nso BM25 and dense retrieval"
    assert grounded_share(answer, SOURCE) == 1.0
    assert grounded_share(answer.upper() + " [2]", SOURCE) == 1.0


def test_a_paraphrase_or_an_invention_is_not():
    paraphrase = "Reciprocal rank fusion sums one divided by sixty plus each rank, so no weights must be tuned at all."
    assert grounded_share(paraphrase, SOURCE) < 0.5
    mixed = "Reciprocal rank fusion adds one over sixty plus the rank from each list, and it was invented in 1850."
    share = grounded_share(mixed, SOURCE)
    assert 0.3 < share < 1.0


def test_short_answers_must_be_a_contiguous_run_of_the_source():
    assert grounded_share("ranked high twice wins", SOURCE) == 1.0
    assert grounded_share("twice ranked high wins", SOURCE) == 0.0
    assert grounded_share("", SOURCE) == 0.0


def test_summary_counts_fully_grounded_answers():
    summary = grounding_summary([("A document ranked high twice wins.", SOURCE), ("Something invented.", SOURCE)])
    assert summary["answers"] == 2 and summary["fully_grounded"] == 1
    assert summary["fully_grounded_share"] == 0.5 and summary["ngram"] == 8
    assert grounding_summary([])["answers"] == 0
