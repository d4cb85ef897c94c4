"""Shared helpers for the feature pipeline tests: small real documents in the real warehouse."""

from __future__ import annotations

from llm_engineering.domain.documents import ArticleDocument, PostDocument, RepositoryDocument

TOPICS = {
    "hybrid": "Hybrid search fuses BM25 and dense vectors with reciprocal rank fusion, so rare identifiers match.",
    "lora": "LoRA trains low-rank adapters; QLoRA quantises the base model to 4 bits and is slower on a CPU.",
    "crawler": "An idempotent crawler hashes content and upserts by link, so a second crawl writes nothing.",
    "serving": "vLLM serves models with paged attention and continuous batching for high throughput.",
}


def article(user, key: str, paragraphs: int = 6, extra: str = "") -> ArticleDocument:
    body = "\n\n".join(
        f"{TOPICS[key]} Paragraph {i} adds detail number {i * 7} about {key}." for i in range(paragraphs)
    )
    return ArticleDocument(
        author_id=user.id,
        author_full_name=user.full_name,
        platform="blog",
        link=f"https://example.org/{user.last_name.lower()}/{key}",
        content={"Title": f"On {key}", "Subtitle": f"{key} explained", "Content": f"## {key}\n\n{body}{extra}"},
    )


def post(user, key: str) -> PostDocument:
    return PostDocument(
        author_id=user.id,
        author_full_name=user.full_name,
        platform="linkedin",
        link=f"https://www.linkedin.com/posts/{user.last_name.lower()}-{key}",
        content={"Content": TOPICS[key] + "\n\nLike Comment Repost Send"},
    )


def repository(user) -> RepositoryDocument:
    code = "\n\n".join(
        f"def step_{i}(items):\n    # reciprocal rank fusion, part {i}\n    return sorted(items)[: {i} + 1]\n"
        for i in range(30)
    )
    return RepositoryDocument(
        author_id=user.id,
        author_full_name=user.full_name,
        platform="github",
        link=f"https://github.com/{user.last_name.lower()}/fusion",
        name="fusion",
        content={"fusion.py": code, "README.md": "# fusion\n\nRRF in a few lines."},
    )


def seed(warehouse, full_name: str = "Ada Lovelace"):
    user, _ = warehouse.get_or_create_user(full_name)
    docs = [article(user, "hybrid"), article(user, "lora"), post(user, "crawler"), repository(user)]
    for doc in docs:
        warehouse.upsert_document(doc)
    return user, docs


def points_signature(store) -> dict[str, tuple]:
    """Point id -> what a clean run must reproduce exactly (payload fields that identify the chunk)."""
    return {
        pid: (p["document_id"], p["position"], p["text"], p["source_hash"], p["author_full_name"])
        for pid, p in store.all_points().items()
    }
