"""Shared set-up for the feature/retrieval benchmarks: a throw-away warehouse server and data folder, and a
deterministic synthetic corpus whose vocabulary and word order come from the sample corpus (a bigram model)."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
sys.path.insert(0, str(ROOT))


def machine() -> dict:
    """The shared machine facts (bench/common.py) plus the embedding dtype every feature benchmark uses."""
    # the embedding model runs in float32 on the CPU (sentence-transformers' default; no bf16 cast here)
    return common.machine() | {"embedding_dtype": "float32"}


CACHE_DIR = ROOT / "data" / "local" / "bench-cache"  # git-ignored


def cached_embeddings(model, texts: list[str], label: str):
    """model.encode(texts), cached on disk by model id and the texts' hash (10k chunks take minutes on 2 cores)."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256("\x00".join([model.model_id, *texts]).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"{label}-{digest}.npy"
    if path.exists():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors, True
    vectors = np.asarray(model.encode(texts, show_progress=True), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors, False


@contextmanager
def bench_settings(keep: Path | None = None) -> Iterator:
    """Settings on a fresh data folder and a fresh nx-27017 server (stopped on exit)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    folder = Path(tempfile.mkdtemp(prefix="llm-twin-bench-")) if keep is None else keep
    try:
        with common.nx_warehouse(folder, startup_timeout_s=30) as (uri, _server):
            os.environ.update(
                DATA_DIR=str(folder / "data"), MONGODB_URI=uri, MONGODB_EMBEDDED="false", MONGODB_DATABASE="bench"
            )
            from llm_engineering.settings import Settings, get_settings

            get_settings.cache_clear()
            try:
                yield Settings()
            finally:
                from llm_engineering.infrastructure.qdrant import close_qdrant_clients

                close_qdrant_clients()  # publishes pending embedded-store writes, releases folder locks
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _bigrams() -> tuple[list[str], dict[str, list[str]]]:
    words: list[str] = []
    for record in json.loads((SAMPLE / "ArticleDocument.json").read_text()):
        text = record["content"]["Content"]
        words.extend(w for w in text.replace("\n", " ").split() if not w.startswith(("#", "`", "-")))
    following: dict[str, list[str]] = defaultdict(list)
    for a, b in zip(words, words[1:], strict=False):
        following[a].append(b)
    return words, following


def synthetic_articles(n_articles: int, seed: int = 42, paragraphs: tuple[int, int] = (18, 26)) -> list[dict]:
    """Handbook-style article records (long: ~2,000 words each, headings, paragraphs, a code block)."""
    rng = random.Random(seed)
    words, following = _bigrams()
    authors = [("Bench", "Author"), ("Second", "Writer")]

    def sentence() -> str:
        word = rng.choice(words)
        out = [word.capitalize()]
        for _ in range(rng.randint(8, 24)):
            word = rng.choice(following.get(word) or words)
            out.append(word)
        return " ".join(out).rstrip(".,;:") + "."

    articles = []
    for i in range(n_articles):
        first, last = authors[i % len(authors)]
        sections = []
        for s in range(rng.randint(*paragraphs) // 4):
            body = "\n\n".join(" ".join(sentence() for _ in range(rng.randint(3, 6))) for _ in range(4))
            sections.append(f"## Section {s + 1}: {' '.join(rng.sample(words, 3))}\n\n{body}")
        code = "\n".join(f"    value_{j} = compute_{i}_{j}(batch, window={j})" for j in range(rng.randint(4, 12)))
        sections.insert(2, f"```python\ndef step_{i}(batch):\n{code}\n    return batch\n```")
        articles.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "author": f"{first} {last}",
                "link": f"https://bench.example.org/{last.lower()}/article-{i:04d}",
                "title": f"Article {i}: {' '.join(rng.sample(words, 4))}",
                "content": "\n\n".join(sections),
            }
        )
    return articles


def load_articles(warehouse, articles: list[dict]) -> None:
    from llm_engineering.domain.documents import ArticleDocument

    users = {}
    for record in articles:
        if record["author"] not in users:
            users[record["author"]], _ = warehouse.get_or_create_user(record["author"])
        user = users[record["author"]]
        warehouse.upsert_document(
            ArticleDocument(
                id=uuid.UUID(record["id"]),
                author_id=user.id,
                author_full_name=user.full_name,
                platform="blog",
                link=record["link"],
                content={"Title": record["title"], "Subtitle": "", "Content": record["content"], "language": "en"},
            )
        )
