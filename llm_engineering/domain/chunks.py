"""Feature-store records: cleaned documents, chunks and retrieval results."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from .types import DataCategory

# Namespace for deterministic chunk ids: the same document, position and text always give the same id, so
# re-runs upsert instead of duplicating.
CHUNK_ID_NAMESPACE = uuid.UUID("6f1d3c52-6a55-4c3e-9a0b-6c1f1b0e7a11")


def chunk_id(document_id: uuid.UUID | str, position: int, text: str) -> uuid.UUID:
    return uuid.uuid5(CHUNK_ID_NAMESPACE, f"{document_id}:{position}:{text}")


class DocumentSource(BaseModel):
    """Where a text comes from: shared by a cleaned document and every chunk cut from it (citations, filters)."""

    category: DataCategory
    author_id: uuid.UUID
    author_full_name: str
    platform: str
    link: str
    title: str
    source_hash: str  # content hash of the raw document it was cleaned from

    def source(self) -> dict[str, Any]:
        """The source fields alone, to hand on to what is derived from this text."""
        return {name: getattr(self, name) for name in DocumentSource.model_fields}


class CleanedDocument(DocumentSource):
    """A raw document after cleaning: one text, metadata kept, no vectors (the logical feature store)."""

    id: uuid.UUID  # the raw document's id
    text: str


class Chunk(DocumentSource):
    id: uuid.UUID
    document_id: uuid.UUID
    position: int
    text: str
    token_count: int
    metadata: dict[str, Any] = Field(default_factory=dict)


class RetrievedChunk(BaseModel):
    """One retrieval hit: the chunk, its score under the ranking that produced it, and its 1-based rank."""

    chunk: Chunk
    score: float
    rank: int
    mode: str = "hybrid"  # dense | sparse | hybrid | rerank


class RetrievalResult(BaseModel):
    query: str
    author_full_name: str | None = None
    hits: list[RetrievedChunk]
    metadata: dict[str, Any] = Field(default_factory=dict)  # e.g. {"reranker": "none (fused hybrid ranking)"}
