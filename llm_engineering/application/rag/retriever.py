"""Hybrid retrieval over the feature store: dense + BM25-style sparse, fused with reciprocal rank fusion.

Modes: `dense`, `sparse`, `hybrid` (Qdrant query API: prefetch both, fuse with RRF) and `rerank` (hybrid
candidates re-scored by a CrossEncoder when `settings.reranker_model_id` is set). Without a reranker the fused
hybrid ranking is final; that is stated in the logs and in `RetrievalResult.metadata["reranker"]`.
An author filter comes from the `author` argument or, failing that, from the self-query (a known author's
full name in the question).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from llm_engineering.application.preprocessing import sparse
from llm_engineering.application.rag.fusion import reciprocal_rank_fusion
from llm_engineering.application.rag.self_query import SelfQuery
from llm_engineering.domain.chunks import Chunk, RetrievalResult, RetrievedChunk
from llm_engineering.domain.documents import normalize_full_name

if TYPE_CHECKING:
    from llm_engineering.settings import Settings

MODES = ("dense", "sparse", "hybrid", "rerank")
NO_RERANKER = "none (fused hybrid ranking)"


class SearchStore(Protocol):
    def exists(self) -> bool: ...

    def search(
        self,
        mode: str,
        dense: Any,
        sparse: sparse.SparseVec | None,
        limit: int,
        author_full_name: str | None = None,
        prefetch_limit: int | None = None,
    ) -> list[tuple[Chunk, float]]: ...


class QueryEncoder(Protocol):
    model_id: str

    def encode(self, texts: list[str], show_progress: bool = False, batch_size: int | None = None) -> Any: ...


class Reranker(Protocol):
    model_id: str

    def score(self, query: str, passages: list[str]) -> list[float]: ...


class HybridRetriever:
    """Implements `ports.Retriever`. Components may be given, or built lazily from settings on first search."""

    def __init__(
        self,
        settings: Settings | None = None,
        store: SearchStore | None = None,
        embedder: QueryEncoder | None = None,
        self_query: SelfQuery | None = None,
        reranker: Reranker | None = None,
        default_mode: str | None = None,
        fusion: str = "qdrant",
        candidates_per_k: int = 4,
    ) -> None:
        if default_mode is not None and default_mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if fusion not in ("qdrant", "client"):
            raise ValueError("fusion must be 'qdrant' (query API) or 'client' (two searches + RRF here)")
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self._self_query = self_query
        self._reranker = reranker
        self._reranker_resolved = reranker is not None or settings is None
        self._default_mode = default_mode
        self.fusion = fusion
        self.candidates_per_k = candidates_per_k

    # --- lazy components -------------------------------------------------------------------------------------
    @property
    def store(self) -> SearchStore:
        if self._store is None:
            from llm_engineering.infrastructure.qdrant import get_feature_store

            self._store = get_feature_store(self._require_settings())
        return self._store

    @property
    def embedder(self) -> QueryEncoder:
        if self._embedder is None:
            from llm_engineering.infrastructure.embeddings import get_embedding_model

            self._embedder = get_embedding_model(self._require_settings())
        return self._embedder

    @property
    def self_query(self) -> SelfQuery | None:
        if self._self_query is None and self._settings is not None:
            from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

            self._self_query = SelfQuery(MongoWarehouse(settings=self._settings))
        return self._self_query

    @property
    def reranker(self) -> Reranker | None:
        if not self._reranker_resolved:
            from llm_engineering.infrastructure.embeddings import get_reranker

            self._reranker = get_reranker(self._require_settings())
            self._reranker_resolved = True
            if self._reranker is None:
                logger.info("No RERANKER_MODEL_ID set: the fused hybrid ranking is the final ranking")
        return self._reranker

    @property
    def default_mode(self) -> str:
        return self._default_mode or ("rerank" if self.reranker is not None else "hybrid")

    def available_modes(self) -> list[str]:
        return [*MODES[:3], *(["rerank"] if self.reranker is not None else [])]

    def _require_settings(self) -> Settings:
        if self._settings is None:
            raise ValueError("HybridRetriever needs settings or explicit components")
        return self._settings

    # --- search ------------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, author: str | None = None, mode: str | None = None) -> RetrievalResult:
        mode = mode or self.default_mode
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose one of {MODES}")
        timings: dict[str, float] = {}
        metadata: dict[str, Any] = {"requested_mode": mode, "fusion": "rrf"}

        started = time.perf_counter()
        author_name, author_source = self._author_filter(query, author, metadata)
        timings["self_query_ms"] = (time.perf_counter() - started) * 1000

        reranker = self.reranker if mode == "rerank" else None
        if mode == "rerank" and reranker is None:
            logger.info("Rerank requested but no RERANKER_MODEL_ID is set: using the fused hybrid ranking")
            mode = "hybrid"
        metadata["mode"] = mode
        metadata["reranker"] = reranker.model_id if reranker is not None else NO_RERANKER

        if not query.strip() or not self.store.exists():
            if query.strip():
                metadata["warning"] = "the feature store is empty: run `poe run-feature-engineering-pipeline` first"
                logger.warning(metadata["warning"])
            return RetrievalResult(query=query, author_full_name=author_name, hits=[], metadata=metadata)

        started = time.perf_counter()
        dense = None if mode == "sparse" else self._encode_query(query)
        lexical = None if mode == "dense" else sparse.query_vector(query)
        timings["encode_ms"] = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        limit = max(k * self.candidates_per_k, 20) if reranker is not None else k
        ranked = self._search(mode, dense, lexical, limit, author_name)
        timings["search_ms"] = (time.perf_counter() - started) * 1000

        hit_mode = mode
        if reranker is not None and ranked:
            started = time.perf_counter()
            scores = reranker.score(query, [c.text for c, _ in ranked])
            ranked = sorted(zip((c for c, _ in ranked), scores, strict=True), key=lambda cs: -cs[1])
            timings["rerank_ms"] = (time.perf_counter() - started) * 1000
            hit_mode = "rerank"
        hits = [
            RetrievedChunk(chunk=chunk, score=score, rank=i, mode=hit_mode)
            for i, (chunk, score) in enumerate(ranked[:k], start=1)
        ]
        metadata["author_source"] = author_source
        metadata["timings_ms"] = {key: round(v, 2) for key, v in timings.items()}
        return RetrievalResult(query=query, author_full_name=author_name, hits=hits, metadata=metadata)

    def _encode_query(self, query: str) -> list[float]:
        encode_query = getattr(self.embedder, "encode_query", None)
        vector = encode_query(query) if encode_query is not None else self.embedder.encode([query])[0]
        return vector.tolist()

    def _author_filter(self, query: str, author: str | None, metadata: dict[str, Any]) -> tuple[str | None, str | None]:
        if author and author.strip():
            name = normalize_full_name(author)
            self_query = self.self_query
            if self_query is not None:
                known = self_query.is_known(name)
                metadata["author_known"] = known
                if not known:
                    logger.warning("Author {!r} is not in the warehouse: the filter will match nothing", name)
            return name, "argument"
        self_query = self.self_query
        if self_query is None:
            return None, None
        found = self_query.extract_author(query)
        return (found, "self-query") if found else (None, None)

    def _search(self, mode: str, dense: Any, lexical: Any, limit: int, author: str | None) -> list[tuple[Chunk, float]]:
        store_mode = "hybrid" if mode == "rerank" else mode
        if store_mode != "hybrid" or self.fusion == "qdrant":
            return self.store.search(store_mode, dense, lexical, limit, author_full_name=author)
        # Client-side RRF for Qdrant servers without the query API (< 1.10): two searches, fused here.
        depth = max(limit * 4, 20)
        dense_hits = self.store.search("dense", dense, None, depth, author_full_name=author)
        sparse_hits = self.store.search("sparse", None, lexical, depth, author_full_name=author)
        chunks = {c.id: c for c, _ in [*dense_hits, *sparse_hits]}
        fused = reciprocal_rank_fusion([[c.id for c, _ in dense_hits], [c.id for c, _ in sparse_hits]])
        return [(chunks[cid], score) for cid, score in fused[:limit]]


def build_retriever(settings: Settings, **kwargs: Any) -> HybridRetriever:
    """The retriever the RAG service, the demo and the tools use. Nothing is opened or loaded until a search."""
    return HybridRetriever(settings=settings, **kwargs)
