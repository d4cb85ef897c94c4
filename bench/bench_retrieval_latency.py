"""Retrieval latency p50/p95 over ≥ 10k chunks for dense, sparse and hybrid search (no LLM), for both vector
stores in one run: Qdrant's in-process engine (qdrant-edge-py, the embedded default) and qdrant-client's
local mode.

    .venv/bin/python bench/bench_retrieval_latency.py [--articles 700] [--queries 100] [--real-dense]
        [--backends edge,qdrant-local] [--output bench/results/retrieval_latency.json]

Chunks come from the deterministic synthetic corpus, cleaned and chunked by the real code; sparse vectors are
the real BM25 vectors. Dense vectors: by default random unit vectors (exact search cost does not depend on the
values); `--real-dense` embeds every chunk with the real model, cached under data/local/bench-cache/ (minutes
the first time on 2 cores). Queries are real sentences from the corpus, encoded by the real model inside the
timed `HybridRetriever.search` call (end-to-end latency), and the store search alone is reported too. Also
measured: hybrid search with an author filter, and how often both stores return the same top chunk.
Each store is loaded, closed (the embedded store publishes its version) and reopened as the RAG service
would open it (for the embedded store: a reader process's private copy).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path

import click
from common import latency_summary
from feature_env import bench_settings, cached_embeddings, machine, synthetic_articles

BACKEND_LABELS = {
    "edge": "qdrant-edge-py (Qdrant's engine in-process; exact dense search below the HNSW threshold)",
    "qdrant-local": "qdrant-client local mode (path), brute force in Python",
}


@click.command()
@click.option("--articles", default=700, show_default=True, help="Synthetic articles (≈19 chunks each).")
@click.option("--seed", default=42, show_default=True)
@click.option("--queries", default=100, show_default=True)
@click.option("--k", default=10, show_default=True)
@click.option("--real-dense", is_flag=True, help="Embed every chunk with the real model (cached on disk).")
@click.option("--backends", default="edge,qdrant-local", show_default=True, help="Comma-separated stores to measure.")
@click.option("--output", default="bench/results/retrieval_latency.json", type=click.Path(path_type=Path))
def main(articles: int, seed: int, queries: int, k: int, real_dense: bool, backends: str, output: Path) -> None:
    import numpy as np

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = set(chosen) - set(BACKEND_LABELS)
    if unknown:
        raise click.BadParameter(f"unknown backend(s) {sorted(unknown)}; use {sorted(BACKEND_LABELS)}")
    machine_at_start = machine()
    with bench_settings() as settings:
        from llm_engineering.application.preprocessing import sparse
        from llm_engineering.application.preprocessing.chunking import chunk_document
        from llm_engineering.application.preprocessing.cleaning import clean_document
        from llm_engineering.application.rag.retriever import HybridRetriever
        from llm_engineering.domain.documents import ArticleDocument
        from llm_engineering.infrastructure.embeddings import get_embedding_model
        from llm_engineering.infrastructure.qdrant import close_qdrant_clients, get_feature_store

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
        from_cache = False
        if real_dense:
            dense, from_cache = cached_embeddings(model, [c.text for c in chunks], f"bench-{articles}-{seed}")
        else:
            dense = rng.standard_normal((len(chunks), model.dimension)).astype(np.float32)
            dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        sparse_vectors = [sparse.document_vector(c.text) for c in chunks]
        vector_s = time.perf_counter() - started

        # Real questions: a sentence from a random chunk, so lexical and dense matches exist.
        pick = random.Random(seed)
        questions = []
        for _ in range(queries):
            text = pick.choice(chunks).text
            sentences = [s for s in text.split(". ") if len(s.split()) > 6] or [text]
            questions.append(" ".join(pick.choice(sentences).split()[:16]))

        stores: dict[str, dict] = {}
        top_ids: dict[str, dict[str, list]] = {}
        for backend in chosen:
            variant = (
                settings.model_copy(update={"qdrant_path": settings.data_dir / "qdrant"})
                if backend == "qdrant-local"
                else settings
            )
            store = get_feature_store(variant)
            store.ensure_collections(model.dimension)
            started = time.perf_counter()
            for i in range(0, len(chunks), 1000):
                store.upsert_chunks(chunks[i : i + 1000], dense[i : i + 1000], sparse_vectors[i : i + 1000])
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            close_qdrant_clients(variant)  # the embedded store publishes here
            started_open = time.perf_counter()
            store = get_feature_store(variant)  # reopened as the service opens it
            n_points = store.count_chunks()
            open_s = time.perf_counter() - started_open
            assert n_points >= 10_000 or articles < 700, n_points

            retriever = HybridRetriever(store, model)  # no warehouse: no self-query lookups
            results, top_ids[backend] = {}, {}
            for label, mode, author in (
                ("dense", "dense", None),
                ("sparse", "sparse", None),
                ("hybrid", "hybrid", None),
                ("hybrid_author_filter", "hybrid", "Bench Author"),
            ):
                for q in questions[:5]:  # warm-up
                    retriever.search(q, k=k, mode=mode, author=author)
                end_to_end, store_only, tops = [], [], []
                for q in questions:
                    started_q = time.perf_counter()
                    result = retriever.search(q, k=k, mode=mode, author=author)
                    end_to_end.append(time.perf_counter() - started_q)
                    store_only.append(result.metadata["timings_ms"]["search_ms"] / 1000)
                    tops.append((str(result.hits[0].chunk.id), result.hits[0].score) if result.hits else None)
                results[label] = {
                    "end_to_end": latency_summary(end_to_end),
                    "store_search": latency_summary(store_only),
                }
                top_ids[backend][label] = tops
                click.echo(f"{backend:>12} {label:>22}: {results[label]}")
            close_qdrant_clients(variant)
            stores[backend] = {
                "engine": BACKEND_LABELS[backend],
                "points": n_points,
                "load_s": round(load_s, 2),
                "publish_and_close_s": round(started_open - started, 2),
                "reopen_s": round(open_s, 2),
                "modes": results,
            }

        encode_only = []
        for q in questions:
            started = time.perf_counter()
            model.encode_query(q)
            encode_only.append(time.perf_counter() - started)

        agreement = {}
        if {"edge", "qdrant-local"} <= set(chosen):
            for label in top_ids["edge"]:
                pairs = list(zip(top_ids["edge"][label], top_ids["qdrant-local"][label], strict=True))
                same = sum(
                    1
                    for a, b in pairs
                    if (a is None and b is None) or (a and b and (a[0] == b[0] or abs(a[1] - b[1]) < 1e-6))
                )
                agreement[label] = round(same / len(pairs), 3)

        edge_hybrid = stores.get("edge", {}).get("modes", {}).get("hybrid", {}).get("end_to_end", {})
        result = {
            "benchmark": "retrieval_latency",
            "points": len(chunks),
            "articles": articles,
            "seed": seed,
            "k": k,
            "queries": queries,
            "dense_vectors": (
                f"real embeddings ({model.model_id}{', from cache' if from_cache else ''})"
                if real_dense
                else "random unit vectors (same exact-search cost)"
            ),
            "setup_s": {"chunk": round(chunk_s, 2), "vectors": round(vector_s, 2)},
            "query_encode": latency_summary(encode_only),
            "backends": stores,
            "top1_agreement_edge_vs_qdrant_local": agreement or None,
            "goal": "embedded (edge) hybrid end-to-end p95 <= 100 ms",
            "goal_met": bool(edge_hybrid) and edge_hybrid["p95_ms"] <= 100,
            "machine": machine_at_start | {"load_average_at_end": machine()["load_average_at_start"]},
        }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
