"""Hybrid retrieval over the feature store: dense + BM25-style sparse, fused with reciprocal rank fusion.

Modes: `dense`, `sparse`, `hybrid` (the store prefetches both and fuses them with RRF) and `rerank` (hybrid
candidates re-scored by a CrossEncoder when one is configured). Without a reranker the fused hybrid ranking is
final; that is stated in the logs and in `RetrievalResult.metadata["reranker"]`.

The author filter is explicit: callers resolve it once (the RAG service per request, `SearchService` for
/search, the CLI and evaluation) and every list that is fused is filtered the same way. Once the filter is set,
the author's name is dropped from the text that is embedded and term-weighted (`strip_author_name`): every
candidate is theirs, so the name only matches bylines and self-mentions. The reranker still reads the question
as asked.
"""

from __future__ import annotations

import time
from typing import Any

from loguru import logger

from llm_engineering.application.ports import QueryEncoder, Reranker, VectorSearch
from llm_engineering.application.preprocessing import sparse
from llm_engineering.application.rag.fusion import reciprocal_rank_fusion
from llm_engineering.application.rag.self_query import strip_author_name
from llm_engineering.domain.chunks import Chunk, RetrievalResult, RetrievedChunk
from llm_engineering.domain.documents import normalize_full_name

MODES = ("dense", "sparse", "hybrid", "rerank")
NO_RERANKER = "none (fused hybrid ranking)"


class HybridRetriever:
    """Implements `ports.Retriever`. The composition root (wiring.py) hands it the store, encoder and reranker."""

    def __init__(
        self,
        store: VectorSearch,
        encoder: QueryEncoder,
        reranker: Reranker | None = None,
        default_mode: str | None = None,
        fusion: str = "qdrant",
        candidates_per_k: int = 4,
        strip_author: bool = True,
    ) -> None:
        if default_mode is not None and default_mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if fusion not in ("qdrant", "client"):
            raise ValueError("fusion must be 'qdrant' (query API) or 'client' (two searches + RRF here)")
        self.store = store
        self.encoder = encoder
        self.reranker = reranker
        self._default_mode = default_mode
        self.fusion = fusion
        self.candidates_per_k = candidates_per_k
        self.strip_author = strip_author  # drop the filtered author's name from the query text (see module doc)

    @property
    def default_mode(self) -> str:
        return self._default_mode or ("rerank" if self.reranker is not None else "hybrid")

    def available_modes(self) -> list[str]:
        return [*MODES[:3], *(["rerank"] if self.reranker is not None else [])]

    # --- search ------------------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, author: str | None = None, mode: str | None = None) -> RetrievalResult:
        mode = mode or self.default_mode
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose one of {MODES}")
        timings: dict[str, float] = {}
        metadata: dict[str, Any] = {"requested_mode": mode, "fusion": "rrf"}

        author_name = normalize_full_name(author) if author and author.strip() else None
        metadata["author_filter"] = author_name

        reranker = self.reranker if mode == "rerank" else None
        if mode == "rerank" and reranker is None:
            logger.info("Rerank requested but no reranker is configured: using the fused hybrid ranking")
            mode = "hybrid"
        metadata["mode"] = mode
        metadata["reranker"] = reranker.model_id if reranker is not None else NO_RERANKER

        if not query.strip() or not self.store.exists():
            if query.strip():
                metadata["warning"] = "the feature store is empty: run `poe run-feature-engineering-pipeline` first"
                logger.warning(metadata["warning"])
            return RetrievalResult(query=query, author_full_name=author_name, hits=[], metadata=metadata)

        text = strip_author_name(query, author_name) if author_name and self.strip_author else query
        if text != query:
            metadata["search_text"] = text
        started = time.perf_counter()
        dense = None if mode == "sparse" else self._encode_query(text)
        lexical = None if mode == "dense" else sparse.query_vector(text)
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
        metadata["timings_ms"] = {key: round(v, 2) for key, v in timings.items()}
        return RetrievalResult(query=query, author_full_name=author_name, hits=hits, metadata=metadata)

    def _encode_query(self, query: str) -> list[float]:
        return self.encoder.encode_query(query).tolist()

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
