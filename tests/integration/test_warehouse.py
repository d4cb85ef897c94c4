"""The warehouse adapter against a real MongoDB-wire server over TCP."""

from __future__ import annotations

import pytest
from pymongo.errors import DuplicateKeyError

from llm_engineering.domain.documents import ArticleDocument, PostDocument
from llm_engineering.domain.types import DataCategory, UpsertOutcome


def _article(author, link: str, text: str) -> ArticleDocument:
    return ArticleDocument(
        author_id=author.id,
        author_full_name=author.full_name,
        platform="blog",
        link=link,
        content={"Title": "T", "Subtitle": None, "Content": text},
    )


def test_get_or_create_user_is_idempotent(warehouse):
    user, created = warehouse.get_or_create_user("Ada   Lovelace")
    again, created_again = warehouse.get_or_create_user("Ada Lovelace")
    assert created and not created_again
    assert again.id == user.id
    assert user.first_name == "Ada" and user.last_name == "Lovelace"
    assert [u.full_name for u in warehouse.list_users()] == ["Ada Lovelace"]


def test_upsert_by_link_inserts_updates_and_skips(warehouse):
    user, _ = warehouse.get_or_create_user("Ada Lovelace")
    first = _article(user, "https://example.org/a", "one")
    assert warehouse.upsert_document(first) is UpsertOutcome.INSERTED
    assert warehouse.upsert_document(_article(user, "https://example.org/a", "one")) is UpsertOutcome.UNCHANGED
    changed = _article(user, "https://example.org/a", "two")
    assert warehouse.upsert_document(changed) is UpsertOutcome.UPDATED
    stored = warehouse.find_documents(DataCategory.ARTICLES)
    assert len(stored) == 1
    assert stored[0].id == first.id  # the original id survives an update
    assert stored[0].content["Content"] == "two"
    assert stored[0].content_hash == changed.content_hash
    assert stored[0].author_full_name == "Ada Lovelace"


def test_unique_link_index_is_enforced_by_the_server(warehouse):
    user, _ = warehouse.get_or_create_user("Ada Lovelace")
    warehouse.upsert_document(_article(user, "https://example.org/a", "one"))
    with pytest.raises(DuplicateKeyError):
        warehouse.db[DataCategory.ARTICLES].insert_one({"_id": "other", "link": "https://example.org/a"})


def test_find_documents_filters_by_author(warehouse):
    ada, _ = warehouse.get_or_create_user("Ada Lovelace")
    alan, _ = warehouse.get_or_create_user("Alan Turing")
    warehouse.upsert_document(_article(ada, "https://example.org/ada", "a"))
    warehouse.upsert_document(
        PostDocument(
            author_id=alan.id,
            author_full_name=alan.full_name,
            platform="linkedin",
            link="https://example.org/alan",
            content={"Content": "b"},
        )
    )
    assert [d.link for d in warehouse.find_documents(DataCategory.ARTICLES, [ada.id])] == ["https://example.org/ada"]
    assert warehouse.find_documents(DataCategory.ARTICLES, [alan.id]) == []
    assert warehouse.count(DataCategory.POSTS) == 1
