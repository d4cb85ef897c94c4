"""Raw documents as stored in the data warehouse (one collection per category)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from .types import DataCategory, Platform

_WHITESPACE = re.compile(r"\s+")


def normalize_full_name(full_name: str) -> str:
    """Collapse whitespace so 'Ada  Lovelace ' and 'Ada Lovelace' are one user."""
    return _WHITESPACE.sub(" ", full_name).strip()


def split_full_name(full_name: str) -> tuple[str, str]:
    """'Ada King Lovelace' -> ('Ada King', 'Lovelace'); a single word is a first name."""
    parts = normalize_full_name(full_name).split(" ")
    if len(parts) == 1:
        return parts[0], ""
    return " ".join(parts[:-1]), parts[-1]


def content_hash(content: dict[str, Any]) -> str:
    """Stable SHA-256 of a content mapping (key order does not matter)."""
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def utc_now() -> datetime:
    return datetime.now(UTC)


class UserDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: ClassVar[DataCategory] = DataCategory.USERS

    id: UUID = Field(default_factory=uuid4)
    first_name: str
    last_name: str = ""
    created_at: datetime = Field(default_factory=utc_now)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def full_name(self) -> str:
        return normalize_full_name(f"{self.first_name} {self.last_name}")

    @classmethod
    def from_full_name(cls, full_name: str) -> UserDocument:
        name = normalize_full_name(full_name)
        if not name:
            raise ValueError("a user needs a non-empty full name")
        first, last = split_full_name(name)
        return cls(first_name=first, last_name=last)


class RawDocument(BaseModel):
    """What every crawled or imported document keeps: who wrote it, where it came from, when, and a hash."""

    category: ClassVar[DataCategory]

    id: UUID = Field(default_factory=uuid4)
    author_id: UUID
    author_full_name: str
    platform: str
    link: str = Field(min_length=1)
    content: dict[str, Any]
    crawled_at: datetime = Field(default_factory=utc_now)
    content_hash: str = ""

    @field_validator("author_full_name")
    @classmethod
    def _normalize_author(cls, value: str) -> str:
        return normalize_full_name(value)

    def model_post_init(self, __context: Any) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.content))

    @property
    def title(self) -> str:
        """A human title for listings and citations."""
        for key in ("Title", "title", "name"):
            value = self.content.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return self.link


class ArticleDocument(RawDocument):
    """content: Title, Subtitle, Content (text keeping headings/paragraphs/lists/code), optional language."""

    category: ClassVar[DataCategory] = DataCategory.ARTICLES


class PostDocument(RawDocument):
    """content: Content (the post text), optional Title; image: a picture link if the post has one."""

    category: ClassVar[DataCategory] = DataCategory.POSTS
    image: str | None = None


class RepositoryDocument(RawDocument):
    """content: {relative file path: file text, byte-for-byte}; name: the repository name."""

    category: ClassVar[DataCategory] = DataCategory.REPOSITORIES
    name: str


DOCUMENT_CLASSES: dict[DataCategory, type[RawDocument]] = {
    DataCategory.ARTICLES: ArticleDocument,
    DataCategory.POSTS: PostDocument,
    DataCategory.REPOSITORIES: RepositoryDocument,
}

PLATFORM_NAMES = tuple(p.value for p in Platform)
