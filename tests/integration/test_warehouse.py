"""The warehouse contract: the adapter against a real MongoDB-wire server over TCP, and the fast suite's
FakeWarehouse held to the same tests (a server-only property, the unique index, is the adapter's alone)."""

from __future__ import annotations

import pytest
from pymongo.errors import DuplicateKeyError

from llm_engineering.domain.documents import ArticleDocument, PostDocument
from llm_engineering.domain.types import DataCategory, UpsertOutcome


@pytest.fixture(params=["mongo", "fake"])
def repository(request):
    """The WarehouseRepository port: the real adapter (its server started by the `warehouse` fixture), or the fake."""
    if request.param == "fake":
        from tests.fakes import FakeWarehouse

        return FakeWarehouse()
    return request.getfixturevalue("warehouse")


def _article(author, link: str, text: str) -> ArticleDocument:
    return ArticleDocument(
        author_id=author.id,
        author_full_name=author.full_name,
        platform="blog",
        link=link,
        content={"Title": "T", "Subtitle": None, "Content": text},
    )


def test_get_or_create_user_is_idempotent(repository):
    user, created = repository.get_or_create_user("Ada   Lovelace")
    again, created_again = repository.get_or_create_user("Ada Lovelace")
    assert created and not created_again
    assert again.id == user.id
    assert user.first_name == "Ada" and user.last_name == "Lovelace"
    assert [u.full_name for u in repository.list_users()] == ["Ada Lovelace"]


def test_upsert_by_link_inserts_updates_and_skips(repository):
    user, _ = repository.get_or_create_user("Ada Lovelace")
    first = _article(user, "https://example.org/a", "one")
    assert repository.upsert_document(first) is UpsertOutcome.INSERTED
    assert repository.upsert_document(_article(user, "https://example.org/a", "one")) is UpsertOutcome.UNCHANGED
    changed = _article(user, "https://example.org/a", "two")
    assert repository.upsert_document(changed) is UpsertOutcome.UPDATED
    stored = repository.find_documents(DataCategory.ARTICLES)
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


def test_find_documents_filters_by_author(repository):
    ada, _ = repository.get_or_create_user("Ada Lovelace")
    alan, _ = repository.get_or_create_user("Alan Turing")
    repository.upsert_document(_article(ada, "https://example.org/ada", "a"))
    repository.upsert_document(
        PostDocument(
            author_id=alan.id,
            author_full_name=alan.full_name,
            platform="linkedin",
            link="https://example.org/alan",
            content={"Content": "b"},
        )
    )
    assert [d.link for d in repository.find_documents(DataCategory.ARTICLES, [ada.id])] == ["https://example.org/ada"]
    assert repository.find_documents(DataCategory.ARTICLES, [alan.id]) == []
    assert repository.count(DataCategory.POSTS) == 1


def test_versions_and_documents_by_id_are_what_an_incremental_feature_run_reads(repository):
    """Issue #24: the feature pipeline compares (author, content hash) per id and reads only what it indexes."""
    ada, _ = repository.get_or_create_user("Ada Lovelace")
    alan, _ = repository.get_or_create_user("Alan Turing")
    docs = [_article(ada, "https://example.org/b", "b"), _article(alan, "https://example.org/a", "a")]
    for doc in docs:
        repository.upsert_document(doc)
    assert repository.document_versions(DataCategory.ARTICLES) == {
        str(d.id): (str(d.author_id), d.content_hash) for d in docs
    }
    assert repository.document_versions(DataCategory.POSTS) == {}
    found = repository.get_documents(DataCategory.ARTICLES, [docs[0].id, str(docs[1].id), "missing"])
    assert [d.link for d in found] == ["https://example.org/a", "https://example.org/b"]  # by link
    assert found[1] == docs[0].model_copy(update={"crawled_at": found[1].crawled_at})
    assert repository.get_documents(DataCategory.ARTICLES, []) == []
    both = repository.find_documents(DataCategory.ARTICLES, [alan.id, ada.id, ada.id])
    assert [d.link for d in both] == ["https://example.org/a", "https://example.org/b"]
