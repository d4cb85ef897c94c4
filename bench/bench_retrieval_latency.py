"""Retrieval latency p50/p95 over ≥ 10k chunks for dense, sparse and hybrid search (no LLM).

    .venv/bin/python bench/bench_retrieval_latency.py [--articles 700] [--queries 100] [--real-dense]
        [--output bench/results/retrieval_latency.json]

Chunks come from the deterministic synthetic corpus, cleaned and chunked by the real code; sparse vectors are
the real BM25 vectors. Dense vectors: by default random unit vectors (brute-force search cost in qdrant-client
local mode does not depend on the values, and embedding 10k chunks on 2 shared cores takes many minutes);
`--real-dense` embeds every chunk with the real model instead. Queries are real sentences from the corpus,
encoded by the real model inside the timed `HybridRetriever.search` call (end-to-end latency), and the store
search alone is reported too. Also measured: hybrid search with an author filter.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from pathlib import Path

import click
from feature_env import bench_settings, machine, synthetic_articles


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "max_ms": round(ms[-1], 2),
        "n": len(ms),
    }


@click.command()
@click.option("--articles", default=700, show_default=True, help="Synthetic articles (≈19 chunks each).")
@click.option("--seed", default=42, show_default=True)
@click.option("--queries", default=100, show_default=True)
@click.option("--k", default=10, show_default=True)
@click.option("--real-dense", is_flag=True, help="Embed every chunk with the real model (slow on CPU).")
@click.option("--output", default="bench/results/retrieval_latency.json", type=click.Path(path_type=Path))
def main(articles: int, seed: int, queries: int, k: int, real_dense: bool, output: Path) -> None:
    import numpy as np

    with bench_settings() as settings:
        from llm_engineering.application.preprocessing import sparse
        from llm_engineering.application.preprocessing.chunking import chunk_document
        from llm_engineering.application.preprocessing.cleaning import clean_document
        from llm_engineering.application.rag.retriever import HybridRetriever
        from llm_engineering.domain.documents import ArticleDocument
        from llm_engineering.infrastructure.embeddings import get_embedding_model
        from llm_engineering.infrastructure.qdrant import get_feature_store

        model = get_embedding_model(settings)
        corpus = synthetic_articles(articles, seed=seed)
        author_ids = {name: uuid.uuid5(uuid.NAMESPACE_DNS, name) for name in {a["author"] for a in corpus}}
        started = time.perf_counter()
        chunks = []
        for record in corpus:
            document = ArticleDocument(
                id=record["id"],
                author_id=author_ids[record["author"]],
                author_full_name=record["author"],
                platform="blog",
                link=record["link"],
                content={"Title": record["title"], "Content": record["content"]},
            )
            chunks.extend(chunk_document(clean_document(document), model))
        chunk_s = time.perf_counter() - started

        rng = np.random.default_rng(seed)
        started = time.perf_counter()
        if real_dense:
            dense = model.encode([c.text for c in chunks], show_progress=True)
        else:
            dense = rng.standard_normal((len(chunks), model.dimension)).astype(np.float32)
            dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        sparse_vectors = [sparse.document_vector(c.text) for c in chunks]
        vector_s = time.perf_counter() - started

        store = get_feature_store(settings)
        store.ensure_collections(model.dimension)
        started = time.perf_counter()
        for i in range(0, len(chunks), 1000):
            store.upsert_chunks(chunks[i : i + 1000], dense[i : i + 1000], sparse_vectors[i : i + 1000])
        load_s = time.perf_counter() - started
        n_points = store.count_chunks()
        assert n_points >= 10_000 or articles < 700, n_points

        # Real questions: a sentence from a random chunk, so lexical and dense matches exist.
        pick = random.Random(seed)
        questions = []
        for _ in range(queries):
            text = pick.choice(chunks).text
            sentences = [s for s in text.split(". ") if len(s.split()) > 6] or [text]
            questions.append(" ".join(pick.choice(sentences).split()[:16]))

        retriever = HybridRetriever(store=store, embedder=model)  # no warehouse: no self-query lookups
        results = {}
        for label, mode, author in (
            ("dense", "dense", None),
            ("sparse", "sparse", None),
            ("hybrid", "hybrid", None),
            ("hybrid_author_filter", "hybrid", "Bench Author"),
        ):
            for q in questions[:5]:  # warm-up
                retriever.search(q, k=k, mode=mode, author=author)
            end_to_end, store_only = [], []
            for q in questions:
                started = time.perf_counter()
                result = retriever.search(q, k=k, mode=mode, author=author)
                end_to_end.append(time.perf_counter() - started)
                store_only.append(result.metadata["timings_ms"]["search_ms"] / 1000)
            results[label] = {"end_to_end": percentiles(end_to_end), "store_search": percentiles(store_only)}
            click.echo(f"{label:>22}: {results[label]}")

        encode_only = []
        for q in questions:
            started = time.perf_counter()
            model.encode_query(q)
            encode_only.append(time.perf_counter() - started)

        result = {
            "benchmark": "retrieval_latency",
            "points": n_points,
            "articles": articles,
            "seed": seed,
            "k": k,
            "queries": queries,
            "dense_vectors": "real embeddings" if real_dense else "random unit vectors (same brute-force cost)",
            "backend": "qdrant-client local mode (path), brute force",
            "setup_s": {"chunk": round(chunk_s, 2), "vectors": round(vector_s, 2), "qdrant_load": round(load_s, 2)},
            "query_encode": percentiles(encode_only),
            "modes": results,
            "goal": "hybrid end-to-end p95 <= 100 ms",
            "machine": machine(),
        }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
