"""Issue #13: the author filter on every path (retriever, /search's service, /rag, evaluation), the author's
name dropped from the query text once it is the filter, the evaluator's report of the filter actually applied,
and the title-prefixed index text (fakes of the ports: fast)."""

from __future__ import annotations

import asyncio
import csv
import uuid

import numpy as np
import pytest

from llm_engineering.application.evaluation.retrieval import (
    QAItem,
    evaluate_retrieval,
    filter_outcome,
    write_evaluation,
)
from llm_engineering.application.preprocessing import sparse
from llm_engineering.application.preprocessing.chunking import (
    ChunkingParams,
    chunk_document,
    index_prefix,
    index_text,
)
from llm_engineering.application.preprocessing.features import FeatureEngineering
from llm_engineering.application.rag.retriever import HybridRetriever
from llm_engineering.application.rag.search import SearchService
from llm_engineering.application.rag.self_query import SelfQuery, strip_author_name
from llm_engineering.domain.chunks import CleanedDocument
from llm_engineering.domain.documents import ArticleDocument
from llm_engineering.domain.types import DataCategory
from tests.fakes import FakeVectorStore, FakeWarehouse, HashingEncoder, ScriptedLLM, fake_rag_corpus, fake_services

TOPICS = {
    ("Ada Lovelace", "lora"): "LoRA adapters train a few low rank matrices while the base model stays frozen.",
    ("Ada Lovelace", "hybrid"): "Hybrid search fuses sparse BM25 scores and dense vectors with rank fusion.",
    ("Grace Hopper", "lora"): "Grace measured LoRA adapters on a laptop CPU and found them slow but workable.",
    ("Grace Hopper", "serving"): "Serving with continuous batching keeps the accelerator busy under load.",
}


class RecordingEncoder(HashingEncoder):
    """The hashing encoder, remembering every query it embedded."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def encode_query(self, text: str) -> np.ndarray:
        self.queries.append(text)
        return super().encode_query(text)


@pytest.fixture
def corpus():
    return fake_rag_corpus(TOPICS)


# --- the name in the query -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "author", "expected"),
    [
        ("What did Grace Hopper measure about LoRA?", "Grace Hopper", "What did measure about LoRA?"),
        ("At Level 1 of Jason Liu's levels of RAG?", "Jason Liu", "At Level 1 of levels of RAG?"),
        ("According to jo  kristian BERGUM, why?", "Jo Kristian Bergum", "According to, why?"),
        ("What does Marchetti say about reranking?", "Elena Marchetti", "What does say about reranking?"),
        ("Hopper's notes on serving", "Grace Hopper", "notes on serving"),
        # a lower-case name part is a word, not the name: only the full name is removed
        ("how does the hopper feed the grace period", "Grace Hopper", "how does the hopper feed the grace period"),
        ("Grace Hopper", "Grace Hopper", "Grace Hopper"),  # nothing else left: the query is kept
        ("Adaptive LoRA", "Ada Lovelace", "Adaptive LoRA"),  # whole words only
    ],
)  # fmt: skip
def test_strip_author_name(query, author, expected):
    assert strip_author_name(query, author) == expected


def test_the_filtered_author_name_is_dropped_from_dense_and_sparse_queries(corpus):
    _, store, _ = corpus
    encoder = RecordingEncoder()
    retriever = HybridRetriever(store, encoder)
    result = retriever.search("What did Grace Hopper measure about LoRA adapters?", k=3, author="Grace Hopper")
    assert encoder.queries == ["What did measure about LoRA adapters?"]
    assert result.metadata["search_text"] == "What did measure about LoRA adapters?"
    assert result.metadata["author_filter"] == "Grace Hopper"
    assert result.query == "What did Grace Hopper measure about LoRA adapters?"  # reported as asked
    assert {h.chunk.author_full_name for h in result.hits} == {"Grace Hopper"}

    kept = HybridRetriever(store, encoder, strip_author=False)
    kept.search("What did Grace Hopper measure about LoRA adapters?", k=3, author="Grace Hopper")
    assert encoder.queries[-1] == "What did Grace Hopper measure about LoRA adapters?"

    unfiltered = retriever.search("What did Grace Hopper measure about LoRA adapters?", k=3)
    assert encoder.queries[-1] == "What did Grace Hopper measure about LoRA adapters?"  # no filter: nothing dropped
    assert "search_text" not in unfiltered.metadata


@pytest.mark.parametrize("fusion", ["qdrant", "client"])
@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_every_list_that_is_fused_is_filtered(corpus, fusion, mode):
    _, store, encoder = corpus
    store.searches.clear()
    retriever = HybridRetriever(store, encoder, fusion=fusion)
    result = retriever.search("LoRA adapters", k=5, author="Ada Lovelace", mode=mode)
    assert store.searches and {s["author"] for s in store.searches} == {"Ada Lovelace"}
    assert result.hits and {h.chunk.author_full_name for h in result.hits} == {"Ada Lovelace"}


def test_search_service_applies_the_named_author_and_says_how(corpus):
    warehouse, store, _ = corpus
    encoder = RecordingEncoder()
    service = SearchService(HybridRetriever(store, encoder), SelfQuery(warehouse))
    result = service.search("What did Grace Hopper measure about LoRA adapters?", k=5)
    assert result.metadata["author_filter"] == "Grace Hopper" and result.metadata["author_source"] == "rule"
    assert encoder.queries == ["What did measure about LoRA adapters?"]
    assert {h.chunk.author_full_name for h in result.hits} == {"Grace Hopper"}


def test_rag_resolves_the_author_once_and_every_search_drops_the_name(corpus):
    llm = ScriptedLLM(json_answers={"query_expansion": {"queries": ["LoRA speed on a CPU by Grace Hopper"]}})
    service, _, _ = fake_services(corpus, llm)
    encoder = RecordingEncoder()
    service.retriever.encoder = encoder
    corpus[1].searches.clear()
    answer = asyncio.run(service.answer("What did Grace Hopper measure about LoRA adapters?"))
    assert answer.author == "Grace Hopper"
    assert {s["author"] for s in corpus[1].searches} == {"Grace Hopper"}
    assert encoder.queries == ["What did measure about LoRA adapters?", "LoRA speed on a CPU by"]


# --- the evaluator reports the filter applied ---------------------------------------------------------------------
def test_evaluation_reports_the_applied_filter_per_question_and_per_kind(corpus, tmp_path):
    warehouse, store, encoder = corpus
    service = SearchService(HybridRetriever(store, encoder), SelfQuery(warehouse))
    items = [
        QAItem(question="What did Grace Hopper measure about LoRA?", link="https://example.org/hopper/lora",
               kind="author", author="Grace Hopper"),
        QAItem(question="How fast are LoRA adapters on a laptop CPU?", link="https://example.org/hopper/lora",
               kind="author", author="Grace Hopper"),  # names nobody: the filter cannot be found in the text
        QAItem(question="What does Ada Lovelace say about rank fusion?", link="https://example.org/lovelace/hybrid",
               kind="specific"),  # a filter where the QA set names no author
        QAItem(question="continuous batching under load", link="https://example.org/hopper/serving", kind="specific"),
    ]  # fmt: skip
    evaluation = evaluate_retrieval(service, items, k=3, modes=["sparse", "hybrid"])
    assert evaluation.author_from == "question"
    author = evaluation.author_filter["author"]
    assert (author["author_named"], author["applied_correctly"], author["missing"]) == (2, 1, 0 + 1)
    assert author["share_correct"] == 0.5
    assert evaluation.author_filter["specific"]["unexpected"] == 1
    assert evaluation.author_filter["overall"]["questions"] == 4  # each question counted once, not per mode

    _, csv_path = write_evaluation(evaluation, tmp_path / "eval.json")
    rows = list(csv.DictReader(csv_path.open()))
    first = rows[0]
    assert (first["author"], first["requested_author"], first["applied_filter"]) == ("Grace Hopper", "", "Grace Hopper")
    assert (first["filter_source"], first["filter_outcome"]) == ("rule", "correct")
    assert {(r["filter_source"], r["filter_outcome"]) for r in rows[2:4]} == {("none", "missing")}
    assert {(r["applied_filter"], r["filter_outcome"]) for r in rows[4:6]} == {("Ada Lovelace", "unexpected")}

    oracle = evaluate_retrieval(service, items, k=3, modes=["hybrid"], author_from="qa")
    assert oracle.author_filter["author"]["share_correct"] == 1.0
    assert oracle.rows[1]["filter_source"] == "request" and oracle.rows[1]["applied_filter"] == "Grace Hopper"
    with pytest.raises(ValueError, match="author_from"):
        evaluate_retrieval(service, items, author_from="llm")


def test_filter_outcomes():
    assert filter_outcome("Ada Lovelace", "ada lovelace") == "correct"
    assert filter_outcome(None, None) == "correct"
    assert filter_outcome("Ada Lovelace", "Grace Hopper") == "wrong_author"
    assert filter_outcome("Ada Lovelace", None) == "missing"
    assert filter_outcome(None, "Grace Hopper") == "unexpected"


# --- title-prefixed index text ------------------------------------------------------------------------------------
def _document(title: str, words: int) -> CleanedDocument:
    return CleanedDocument(
        id=uuid.UUID(int=9),
        category=DataCategory.ARTICLES,
        author_id=uuid.UUID(int=1),
        author_full_name="Ada Lovelace",
        platform="blog",
        link="https://example.org/a",
        title=title,
        text="\n\n".join(" ".join(f"w{p}_{i}" for i in range(20)) for p in range(words // 20)),
        source_hash="h",
    )


def test_the_title_is_reserved_inside_the_window_and_the_chunk_text_is_unchanged():
    encoder = HashingEncoder()  # one token per word, window 256, no special tokens
    title = "Long " * 60 + "title"
    doc = _document(title, 2000)
    params = ChunkingParams(chunk_tokens=250, overlap_tokens=0)
    chunks = chunk_document(doc, encoder, params)
    prefix = index_prefix(title, params)
    assert prefix.endswith("\n\n") and len(prefix) <= 162 and prefix.startswith("Long Long")
    for chunk in chunks:
        assert chunk.text in doc.text and not chunk.text.startswith("Long")  # the citation text is the document's
        assert index_text(chunk, params) == prefix + chunk.text
        assert chunk.token_count == len((prefix + chunk.text).split()) <= encoder.max_seq_length
    assert max(c.token_count for c in chunks) > 250  # the window, not the chunk size, was the limit

    off = ChunkingParams(chunk_tokens=250, overlap_tokens=0, title_prefix=False)
    plain = chunk_document(doc, encoder, off)
    assert index_text(plain[0], off) == plain[0].text and plain[0].token_count == len(plain[0].text.split())


def test_the_feature_pipeline_embeds_and_weights_the_index_text():
    warehouse, store, encoder = FakeWarehouse(), FakeVectorStore(), HashingEncoder()
    user, _ = warehouse.get_or_create_user("Ada Lovelace")
    warehouse.upsert_document(
        ArticleDocument(
            author_id=user.id,
            author_full_name=user.full_name,
            platform="blog",
            link="https://example.org/lovelace/engines",
            content={"Title": "Analytical engines", "Content": "Cards punch the program.\n\nThe mill computes."},
        )
    )
    FeatureEngineering(warehouse, store, encoder, show_progress=False).run("all")
    (chunk, dense, lexical), *_ = store.points.values()
    expected = "Analytical engines\n\n" + chunk.text
    assert np.allclose(dense, encoder.encode([expected])[0])
    assert lexical == sparse.document_vector(expected)
    # the title's words are searchable in every chunk, even where the chunk never says them
    hits = store.search("sparse", None, sparse.query_vector("analytical"), 5)
    assert hits and hits[0][0].id == chunk.id
