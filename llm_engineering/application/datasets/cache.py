"""Generations cached by (what was asked about, prompt version, model, parameters), so a re-run on unchanged
documents calls the LLM 0 times. The store behind it is the `KeyValueCache` port (a file under
DATA_DIR/datasets/cache by default)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from llm_engineering.application.ports import KeyValueCache
from llm_engineering.domain.prompts import DATASET_PROMPT_VERSION


def cache_key(kind: str, subject_hash: str, model: str, **params: Any) -> str:
    """kind (instructions | rejected | judge), the hash of the text asked about, the prompt version, the model
    and the generation parameters that change the output."""
    described = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{DATASET_PROMPT_VERSION}\0{model}\0{described}".encode()).hexdigest()[:16]
    return f"{kind}:{subject_hash}:{digest}"


class GenerationCache:
    """The port plus hit/miss counts per kind (the report's `cache_hits` and `llm_calls`)."""

    def __init__(self, store: KeyValueCache) -> None:
        self.store = store
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()

    def get(self, kind: str, key: str) -> Any | None:
        value = self.store.get(key)
        if value is None:
            self.misses[kind] += 1
        else:
            self.hits[kind] += 1
        return value

    def put(self, key: str, value: Any) -> None:
        self.store.put(key, value)
