"""Hybrid retrieval over the feature store: dense + BM25-style sparse, fused with reciprocal rank fusion.

Modes: `dense`, `sparse`, `hybrid` (the store prefetches both and fuses them with RRF) and `rerank` (hybrid
candidates re-scored by the configured reranker: a CrossEncoder, or a causal LM's query likelihood). Without a
reranker the fused hybrid ranking is final; that is stated in the logs and in `RetrievalResult.metadata["reranker"]`.

Reranking scores the best chunk of each of the first `rerank_documents` documents of the hybrid ranking (one
passage per document: the evaluation and the answer's sources count documents, and a document's other chunks
would cost a forward pass each for nothing new), then either fuses the reranker's order with the hybrid order
(`rerank_fusion="rrf"`, the default: a weak reranker corrects hybrid without overruling it) or replaces it
(`"replace"`, for a strong cross-encoder). The documents' other chunks, and documents beyond the pool, follow in
hybrid order. A hit's `score` is that of the stage its `mode` names (the fused or reranker score for `rerank`
hits, the hybrid score for the rest), so scores are comparable only within one mode.

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
from llm_engineering.application.preprocessing.chunking import index_text
from llm_engineering.application.rag.fusion import reciprocal_rank_fusion
from llm_engineering.application.rag.self_query import strip_author_name
from llm_engineering.domain.chunks import Chunk, RetrievalResult, RetrievedChunk
from llm_engineering.domain.documents import normalize_full_name

MODES = ("dense", "sparse", "hybrid", "rerank")
NO_RERANKER = "none (fused hybrid ranking)"
RERANK_FUSIONS = ("rrf", "replace")


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
        rerank_documents: int = 10,
        rerank_fusion: str = "rrf",
    ) -> None:
        if default_mode is not None and default_mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if fusion not in ("qdrant", "client"):
            raise ValueError("fusion must be 'qdrant' (query API) or 'client' (two searches + RRF here)")
        if rerank_fusion not in RERANK_FUSIONS:
            raise ValueError(f"rerank_fusion must be one of {RERANK_FUSIONS}")
        if rerank_documents < 1:
            raise ValueError("rerank_documents must be at least 1")
        self.store = store
        self.encoder = encoder
        self.reranker = reranker
        self._default_mode = default_mode
        self.fusion = fusion
        self.candidates_per_k = candidates_per_k
        self.strip_author = strip_author  # drop the filtered author's name from the query text (see module doc)
        self.rerank_documents = rerank_documents
        self.rerank_fusion = rerank_fusion

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
        if reranker is not None:
            metadata["rerank"] = {"documents": self.rerank_documents, "fusion": self.rerank_fusion}

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
        limit = max(k, self.rerank_documents) * self.candidates_per_k if reranker is not None else k
        ranked = self._search(mode, dense, lexical, limit, author_name)
        timings["search_ms"] = (time.perf_counter() - started) * 1000

        reranked = 0  # the first `reranked` hits were scored by the reranker; the rest keep the search's order
        if reranker is not None and ranked:
            started = time.perf_counter()
            ranked, reranked = self._rerank(reranker, query, ranked)
            timings["rerank_ms"] = (time.perf_counter() - started) * 1000
        unscored_mode = "hybrid" if reranker is not None else mode
        hits = [
            RetrievedChunk(chunk=chunk, score=score, rank=i, mode="rerank" if i <= reranked else unscored_mode)
            for i, (chunk, score) in enumerate(ranked[:k], start=1)
        ]
        metadata["timings_ms"] = {key: round(v, 2) for key, v in timings.items()}
        return RetrievalResult(query=query, author_full_name=author_name, hits=hits, metadata=metadata)

    def _rerank(
        self, reranker: Reranker, query: str, ranked: list[tuple[Chunk, float]]
    ) -> tuple[list[tuple[Chunk, float]], int]:
        """(the candidates reordered, how many of them the reranker scored): see the module doc."""
        pool: list[tuple[Chunk, float]] = []
        documents: set[str] = set()
        for chunk, score in ranked:
            if len(pool) == self.rerank_documents:
                break
            if str(chunk.document_id) not in documents:
                documents.add(str(chunk.document_id))
                pool.append((chunk, score))
        # The reranker reads what the index reads: the document's title, then the chunk.
        scores = reranker.score(query, [index_text(chunk) for chunk, _ in pool])
        by_score = sorted(range(len(pool)), key=lambda i: -scores[i])
        if self.rerank_fusion == "replace":
            reordered = [(pool[i][0], scores[i]) for i in by_score]
        else:
            fused = reciprocal_rank_fusion([list(range(len(pool))), by_score])
            reordered = [(pool[i][0], value) for i, value in fused]
        pooled = {chunk.id for chunk, _ in pool}
        return reordered + [(chunk, score) for chunk, score in ranked if chunk.id not in pooled], len(pool)

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
