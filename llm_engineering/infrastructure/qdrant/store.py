"""The feature store in Qdrant.

- `chunks`: one point per chunk with a dense vector ("dense", cosine) and a BM25-style sparse vector ("sparse",
  IDF applied by Qdrant), payload = the Chunk (author id and name, platform, link, document id, category,
  position, text, title, ...).
- `cleaned_documents`: one point per cleaned document, no vectors (the logical feature store that dataset
  generation reads). Its payload also carries `marker`, the hash of the source content and the feature
  settings: it is written only after all the document's chunks, so a document whose marker matches is
  complete, and a run killed midway redoes exactly the unfinished documents.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from loguru import logger

from llm_engineering.domain.chunks import Chunk, CleanedDocument
from llm_engineering.domain.documents import normalize_full_name
from llm_engineering.domain.vectors import RRF_K, SparseVec

if TYPE_CHECKING:
    import numpy as np
    from qdrant_client import QdrantClient, models

DENSE = "dense"
SPARSE = "sparse"
CHUNKS_COLLECTION = "chunks"
DOCUMENTS_COLLECTION = "cleaned_documents"
_SCROLL_PAGE = 1000


def _models() -> Any:
    from qdrant_client import models

    return models


class QdrantFeatureStore:
    def __init__(
        self,
        client: QdrantClient,
        chunks_collection: str = CHUNKS_COLLECTION,
        documents_collection: str = DOCUMENTS_COLLECTION,
    ) -> None:
        self.client = client
        self.chunks_collection = chunks_collection
        self.documents_collection = documents_collection

    # --- schema -------------------------------------------------------------------------------------------
    def dense_size(self) -> int | None:
        if not self.client.collection_exists(self.chunks_collection):
            return None
        vectors = self.client.get_collection(self.chunks_collection).config.params.vectors
        return vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None

    def ensure_collections(self, dense_size: int) -> bool:
        """Create the collections; a dense size that changed (new model) drops both. True if recreated."""
        m = _models()
        current = self.dense_size()
        recreated = False
        if current is not None and current != dense_size:
            logger.warning(
                "Collection {!r} holds {}-d vectors, the embedding model gives {}-d: rebuilding the feature store",
                self.chunks_collection,
                current,
                dense_size,
            )
            self.client.delete_collection(self.chunks_collection)
            self.client.delete_collection(self.documents_collection)
            recreated = True
        if not self.client.collection_exists(self.chunks_collection):
            self.client.create_collection(
                self.chunks_collection,
                vectors_config={DENSE: m.VectorParams(size=dense_size, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            )
            with warnings.catch_warnings():  # local mode ignores payload indexes (and says so); servers use them
                warnings.simplefilter("ignore", UserWarning)
                for field in ("document_id", "author_full_name", "category"):
                    self.client.create_payload_index(self.chunks_collection, field, m.PayloadSchemaType.KEYWORD)
        if not self.client.collection_exists(self.documents_collection):
            self.client.create_collection(self.documents_collection, vectors_config={})
        return recreated

    def exists(self) -> bool:
        return self.client.collection_exists(self.chunks_collection)

    # --- writes -------------------------------------------------------------------------------------------
    def upsert_chunks(self, chunks: Sequence[Chunk], dense: np.ndarray, sparse: Sequence[SparseVec]) -> None:
        if not chunks:
            return
        m = _models()
        points = [
            m.PointStruct(
                id=str(chunk.id),
                vector={
                    DENSE: vector.tolist(),
                    SPARSE: m.SparseVector(indices=sv.indices, values=sv.values),
                },
                payload=chunk.model_dump(mode="json"),
            )
            for chunk, vector, sv in zip(chunks, dense, sparse, strict=True)
        ]
        self.client.upsert(self.chunks_collection, points=points, wait=True)

    def delete_chunks(self, document_id: UUID | str, keep: Sequence[UUID | str] = ()) -> None:
        """Delete the document's chunks except `keep` (stale positions of a changed or half-written document)."""
        m = _models()
        must_not = [m.HasIdCondition(has_id=[str(k) for k in keep])] if keep else None
        selector = m.Filter(
            must=[m.FieldCondition(key="document_id", match=m.MatchValue(value=str(document_id)))],
            must_not=must_not,
        )
        self.client.delete(self.chunks_collection, points_selector=m.FilterSelector(filter=selector), wait=True)

    def put_document(self, document: CleanedDocument, marker: str, stats: dict[str, Any]) -> None:
        """Store the cleaned document and its completion marker (always the last write for a document)."""
        m = _models()
        payload = document.model_dump(mode="json") | {"marker": marker, **stats}
        point = m.PointStruct(id=str(document.id), vector={}, payload=payload)
        self.client.upsert(self.documents_collection, points=[point], wait=True)

    def delete_document(self, document_id: UUID | str) -> None:
        """Chunks first, marker last: an interrupted delete is finished by the next run."""
        m = _models()
        self.delete_chunks(document_id)
        self.client.delete(
            self.documents_collection, points_selector=m.PointIdsList(points=[str(document_id)]), wait=True
        )

    # --- reads --------------------------------------------------------------------------------------------
    def _scroll(self, collection: str, fields: list[str] | bool, scroll_filter: Any = None) -> Iterator[Any]:
        offset = None
        while True:
            records, offset = self.client.scroll(
                collection, limit=_SCROLL_PAGE, offset=offset, with_payload=fields, scroll_filter=scroll_filter
            )
            yield from records
            if offset is None:
                return

    def markers(self) -> dict[str, str]:
        """document id -> marker of every completely indexed document."""
        if not self.client.collection_exists(self.documents_collection):
            return {}
        return {str(r.id): r.payload.get("marker", "") for r in self._scroll(self.documents_collection, ["marker"])}

    def chunk_document_ids(self) -> set[str]:
        if not self.exists():
            return set()
        return {r.payload["document_id"] for r in self._scroll(self.chunks_collection, ["document_id"])}

    def count_chunks(self) -> int:
        return self.client.count(self.chunks_collection, exact=True).count if self.exists() else 0

    def all_points(self) -> dict[str, dict[str, Any]]:
        """Every chunk point id -> payload (tests and audits)."""
        if not self.exists():
            return {}
        return {str(r.id): r.payload for r in self._scroll(self.chunks_collection, True)}

    def cleaned_documents(self, category: str | None = None, author: str | None = None) -> list[CleanedDocument]:
        """The logical feature store: cleaned documents without vectors, for dataset generation."""
        if not self.client.collection_exists(self.documents_collection):
            return []
        conditions = []
        if category:
            conditions.append(_match("category", str(category)))
        if author:
            conditions.append(_match("author_full_name", normalize_full_name(author)))
        flt = _models().Filter(must=conditions) if conditions else None
        fields = set(CleanedDocument.model_fields)
        return [
            CleanedDocument.model_validate({k: v for k, v in r.payload.items() if k in fields})
            for r in self._scroll(self.documents_collection, True, flt)
        ]

    # --- search -------------------------------------------------------------------------------------------
    def search(
        self,
        mode: str,
        dense: Sequence[float] | None,
        sparse: SparseVec | None,
        limit: int,
        author_full_name: str | None = None,
        prefetch_limit: int | None = None,
    ) -> list[tuple[Chunk, float]]:
        """dense | sparse | hybrid (Qdrant prefetch of both + reciprocal rank fusion)."""
        m = _models()
        flt = m.Filter(must=[_match("author_full_name", author_full_name)]) if author_full_name else None
        sparse_query = m.SparseVector(indices=sparse.indices, values=sparse.values) if sparse else None
        if mode == "dense":
            response = self.client.query_points(
                self.chunks_collection, query=list(dense), using=DENSE, limit=limit, query_filter=flt, with_payload=True
            )
        elif mode == "sparse":
            if not sparse_query.indices:  # a query of stopwords only matches nothing lexically
                return []
            response = self.client.query_points(
                self.chunks_collection,
                query=sparse_query,
                using=SPARSE,
                limit=limit,
                query_filter=flt,
                with_payload=True,
            )
        elif mode == "hybrid":
            depth = prefetch_limit or max(limit * 4, 20)
            prefetch = [m.Prefetch(query=list(dense), using=DENSE, limit=depth, filter=flt)]
            if sparse_query.indices:
                prefetch.append(m.Prefetch(query=sparse_query, using=SPARSE, limit=depth, filter=flt))
            response = self.client.query_points(
                self.chunks_collection,
                prefetch=prefetch,
                query=m.RrfQuery(rrf=m.Rrf(k=RRF_K)),  # Qdrant's default k is 2; 60 as in rag/fusion.py
                limit=limit,
                with_payload=True,  # no top-level filter: both prefetches are filtered already (local mode
                # evaluates every filter over every point in Python, so a third pass costs ~1/3 more)
            )
        else:
            raise ValueError(f"unknown search mode {mode!r} (dense, sparse or hybrid)")
        return [(Chunk.model_validate(p.payload), float(p.score)) for p in response.points]


def _match(key: str, value: str) -> models.FieldCondition:
    m = _models()
    return m.FieldCondition(key=key, match=m.MatchValue(value=value))
