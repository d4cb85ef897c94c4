"""Interfaces the application needs from infrastructure. Concrete adapters live in `infrastructure/`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol
from uuid import UUID

from llm_engineering.domain.chunks import RetrievalResult
from llm_engineering.domain.documents import RawDocument, UserDocument
from llm_engineering.domain.types import DataCategory, UpsertOutcome


class WarehouseRepository(Protocol):
    """The raw data warehouse: users and raw documents, one collection per category."""

    def ensure_indexes(self) -> None: ...

    def get_or_create_user(self, full_name: str) -> tuple[UserDocument, bool]: ...

    def find_user(self, full_name: str) -> UserDocument | None: ...

    def list_users(self) -> list[UserDocument]: ...

    def upsert_user(self, user: UserDocument) -> UpsertOutcome: ...

    def upsert_document(self, document: RawDocument) -> UpsertOutcome: ...

    def find_documents(self, category: DataCategory, author_ids: Iterable[UUID] | None = None) -> list[RawDocument]: ...

    def count(self, category: DataCategory) -> int: ...

    def export_records(self, category: DataCategory) -> Iterator[dict[str, Any]]: ...


class Retriever(Protocol):
    """Search over the feature store. Implemented in `application/rag/retriever.py` (hybrid dense+sparse)."""

    def search(self, query: str, k: int = 5, author: str | None = None) -> RetrievalResult: ...
