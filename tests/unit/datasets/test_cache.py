"""The generation cache: keys that change with what changes the output, and the SQLite store behind the port."""

from __future__ import annotations

import pytest

from llm_engineering.application.datasets.cache import GenerationCache, cache_key
from llm_engineering.domain.prompts import DATASET_PROMPT_VERSION
from llm_engineering.infrastructure.kv_cache import MemoryKeyValueCache, SqliteKeyValueCache


def test_keys_change_with_text_model_and_parameters_only():
    base = cache_key("instructions", "abc", "model-a", n=2, temperature=0.0)
    assert base == cache_key("instructions", "abc", "model-a", temperature=0.0, n=2)  # order does not matter
    assert base != cache_key("instructions", "abd", "model-a", n=2, temperature=0.0)
    assert base != cache_key("instructions", "abc", "model-b", n=2, temperature=0.0)
    assert base != cache_key("instructions", "abc", "model-a", n=1, temperature=0.0)
    assert base != cache_key("rejected", "abc", "model-a", n=2, temperature=0.0)
    assert DATASET_PROMPT_VERSION.startswith("datasets-v1-")


def test_sqlite_store_persists_across_instances_and_is_lazy(tmp_path):
    path = tmp_path / "cache" / "generations.sqlite"
    store = SqliteKeyValueCache(path)
    assert not path.exists()  # nothing opened until first use
    assert store.get("k") is None
    store.put("k", {"questions": ["How?", None]})
    store.put("k", {"questions": ["Why?"]})  # last write wins
    store.close()
    again = SqliteKeyValueCache(path)
    assert again.get("k") == {"questions": ["Why?"]} and len(again) == 1
    again.close()


@pytest.fixture(params=["sqlite", "memory"])
def key_value_cache(request, tmp_path):
    """Both KeyValueCache adapters (the memory one is what the fast tests and benchmarks use)."""
    cache = SqliteKeyValueCache(tmp_path / "c.sqlite") if request.param == "sqlite" else MemoryKeyValueCache()
    yield cache
    cache.close()


def test_the_key_value_cache_contract(key_value_cache):
    assert key_value_cache.get("missing") is None
    value = {"questions": ["How?", None], "n": 2, "nested": {"ok": True}}
    key_value_cache.put("k", value)
    stored = key_value_cache.get("k")
    assert stored == value and stored is not value  # a copy through JSON, never the caller's object
    value["questions"].append("mutated")
    assert key_value_cache.get("k") == {"questions": ["How?", None], "n": 2, "nested": {"ok": True}}
    key_value_cache.put("k", ["last", "write", "wins"])
    assert key_value_cache.get("k") == ["last", "write", "wins"]


def test_hits_and_misses_are_counted_per_kind():
    cache = GenerationCache(MemoryKeyValueCache())
    assert cache.get("rejected", "x") is None
    cache.put("x", {"text": "answer"})
    assert cache.get("rejected", "x") == {"text": "answer"}
    assert cache.hits == {"rejected": 1} and cache.misses == {"rejected": 1}
