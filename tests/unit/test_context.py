"""Fusion of the expanded queries' hits, junk filtering, and context assembly within the token budget."""

from __future__ import annotations

import uuid

import pytest

from llm_engineering.application.rag.context import assemble_context, context_budget, merge_results
from llm_engineering.application.rag.llm_self_query import name_mentioned
from llm_engineering.application.rag.query_expansion import accept_variant
from llm_engineering.domain.chunks import Chunk, RetrievalResult, RetrievedChunk
from llm_engineering.domain.types import DataCategory
from llm_engineering.infrastructure.llm.tokens import ApproxTokenCounter, TokenizerCounter


def _hit(text: str, rank: int, doc: str = "d", link: str = "https://example.org/a") -> RetrievedChunk:
    document_id = uuid.uuid5(uuid.NAMESPACE_URL, doc)
    chunk = Chunk(
        id=uuid.uuid5(document_id, text),
        document_id=document_id,
        category=DataCategory.ARTICLES,
        author_id=uuid.uuid4(),
        author_full_name="Ada Lovelace",
        platform="blog",
        link=link,
        title=f"Title {doc}",
        position=rank,
        text=text,
        token_count=len(text.split()),
        source_hash="h",
    )
    return RetrievedChunk(chunk=chunk, score=1.0 / rank, rank=rank)


def _result(query: str, *hits: RetrievedChunk) -> RetrievalResult:
    return RetrievalResult(query=query, hits=list(hits))


def test_merge_fuses_rankings_and_collapses_duplicates():
    a, b, c = _hit("alpha", 1, "A"), _hit("beta", 2, "B"), _hit("gamma", 3, "C")
    b_again_other_id = _hit("  Beta ", 1, "B2")  # same passage stored twice: same text modulo spacing/case
    merged = merge_results([_result("q1", a, b, c), _result("q2", b_again_other_id, a)])
    # alpha and beta tie on fused score (ranks 1+2 each); ties keep first-seen order.
    assert [h.chunk.text.strip().lower() for h in merged] == ["alpha", "beta", "gamma"]
    assert len(merged) == 3
    assert [h.rank for h in merged] == [1, 2, 3]
    assert merged[0].score >= merged[1].score >= merged[2].score
    assert all(h.mode == "fused" for h in merged)


def test_merge_of_nothing_is_empty():
    assert merge_results([]) == [] and merge_results([_result("q")]) == []


def test_context_stops_at_k_and_numbers_passages():
    hits = [_hit(f"passage {i} " * 5, i, str(i)) for i in range(1, 6)]
    context = assemble_context(hits, k=3, budget_tokens=10_000, counter=ApproxTokenCounter())
    assert [p.number for p in context.passages] == [1, 2, 3]
    assert context.hits == hits[:3] and context.dropped == 2 and not context.truncated


def test_context_respects_the_budget_and_truncates_the_last_passage():
    counter = ApproxTokenCounter(chars_per_token=1.0)  # 1 char = 1 token: easy arithmetic
    hits = [_hit("x" * 100, 1, "1"), _hit("y" * 100, 2, "2"), _hit("z" * 100, 3, "3")]
    context = assemble_context(hits, k=3, budget_tokens=200, counter=counter)
    assert context.context_tokens <= 200
    assert len(context.passages) == 2 and context.truncated
    assert context.passages[1].text == "y" * len(context.passages[1].text) and len(context.passages[1].text) < 100


def test_context_skips_a_useless_sliver():
    counter = ApproxTokenCounter(chars_per_token=1.0)
    hits = [_hit("x" * 100, 1, "1"), _hit("y" * 100, 2, "2")]
    first_cost = assemble_context(hits[:1], 1, 10_000, counter).context_tokens
    context = assemble_context(hits, k=2, budget_tokens=first_cost + 10, counter=counter)
    assert len(context.passages) == 1 and not context.truncated


def test_budget_arithmetic():
    assert context_budget(2048, 256, 100, margin=16) == 1676
    assert context_budget(512, 500, 100) == 0


@pytest.mark.slow
def test_real_tokenizer_counts_and_truncates_on_token_boundaries():
    from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model
    from llm_engineering.settings import Settings

    # The served model's own tokenizer (converted once from the packaged GGUF, then cached).
    counter = TokenizerCounter.from_file(prepare_packaged_model(Settings()) / "tokenizer.json")
    text = "Reciprocal rank fusion merges dense and sparse rankings without score calibration."
    n = counter.count(text)
    assert 8 < n < len(text)
    cut = counter.truncate(text, 5)
    assert text.startswith(cut) and counter.count(cut) == 5
    assert counter.truncate(text, n + 10) == text and counter.truncate(text, 0) == ""


@pytest.mark.parametrize(
    ("variant", "accepted"),
    [
        ("How do I split documents into chunks?", True),
        ("  how   should I CHUNK documents for RAG?  ", False),  # the original again
        ("", False),
        ("ok", False),
        (42, False),
        ('{"queries": ["chunk"]}', False),
        ("<|im_start|>assistant chunk documents", False),
        ("The weather in Paris is lovely today", False),  # shares no content word: off-topic
        ("chunk " * 200, False),  # too long
    ],
)
def test_query_expansion_junk_filter(variant, accepted):
    original = "How should I chunk documents for RAG?"
    result = accept_variant(variant, original, [original], max_chars=300)
    assert (result is not None) is accepted


def test_llm_self_query_needs_the_name_in_the_question():
    assert name_mentioned("Elena Marchetti", "what does marchetti think of RRF?")
    assert not name_mentioned("Elena Marchetti", "what is RRF?")
    assert not name_mentioned("Al Bo", "al and bo")  # name parts under 3 letters prove nothing
