"""Import a Handbook-format folder of 80 long articles and 2 users, twice, into a fresh embedded warehouse.

    .venv/bin/python bench/bench_warehouse_import.py [--articles 80] [--output bench/results/warehouse_import.json]

Goal (issue #2): the first import takes < 30 s; the second adds 0 documents.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import uuid
from pathlib import Path

import click
from common import machine

WORDS = [
    "retrieval",
    "chunk",
    "embedding",
    "vector",
    "index",
    "query",
    "latency",
    "token",
    "model",
    "pipeline",
    "dataset",
    "warehouse",
    "crawler",
    "context",
    "answer",
    "source",
    "fusion",
    "ranking",
    "sparse",
    "dense",
    "cosine",
    "overlap",
    "window",
    "batch",
    "server",
    "cache",
]


def make_handbook_folder(folder: Path, n_articles: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    users = [
        {"_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "first_name": f, "last_name": last}
        for f, last in (("Bench", "Author"), ("Second", "Writer"))
    ]
    articles = []
    for i in range(n_articles):
        user = users[i % 2]
        paragraphs = ["\n".join(" ".join(rng.choices(WORDS, k=18)) for _ in range(6)) for _ in range(25)]
        articles.append(
            {
                "_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "content": {"Title": f"Article {i}", "Subtitle": "bench", "Content": "\n\n".join(paragraphs)},
                "platform": "medium",
                "author_id": user["_id"],
                "author_full_name": f"{user['first_name']} {user['last_name']}",
                "link": f"https://medium.com/@bench/article-{i}",
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "UserDocument.json").write_text(json.dumps(users))
    (folder / "ArticleDocument.json").write_text(json.dumps(articles))


@click.command()
@click.option("--articles", default=80, show_default=True)
@click.option("--output", default="bench/results/warehouse_import.json", type=click.Path(path_type=Path))
def main(articles: int, output: Path) -> None:
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.infrastructure.local_services import find_free_port
    from llm_engineering.infrastructure.mongo.client import close_clients
    from llm_engineering.infrastructure.mongo.server import embedded_server
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse
    from llm_engineering.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "export"
        make_handbook_folder(folder, articles)
        settings = Settings(data_dir=Path(tmp) / "data", mongodb_uri=f"mongodb://127.0.0.1:{find_free_port()}")
        server = embedded_server(settings)
        try:
            started = time.perf_counter()
            warehouse = MongoWarehouse(settings=settings)
            first = import_warehouse(warehouse, folder, show_progress=False)
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            second = import_warehouse(warehouse, folder, show_progress=False)
            second_s = time.perf_counter() - started
        finally:
            close_clients()
            server.stop()
    result = {
        "benchmark": "warehouse_import",
        "articles": articles,
        "users": 2,
        "first_import_s": round(first_s, 3),
        "first_import_counts": first.counts,
        "second_import_s": round(second_s, 3),
        "second_import_counts": second.counts,
        "second_import_added": sum(c.get("inserted", 0) + c.get("updated", 0) for c in second.counts.values()),
        "goal": "first import < 30 s (includes starting the embedded server); second adds 0",
        "machine": machine(torch=False),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
