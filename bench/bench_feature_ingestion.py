"""Feature-pipeline ingestion vs the bare `encode` of the same chunks with the same model.

    .venv/bin/python bench/bench_feature_ingestion.py [--articles 80] [--seed 42] [--backend edge] [--zenml]
        [--output bench/results/feature_ingestion.json]

A deterministic synthetic corpus of long articles goes into a fresh warehouse; then, on the same warm model:
bare encode of the chunk texts, the whole feature pipeline in-process (query, clean, chunk, embed, sparse
vectors, vector-store writes, and publishing the store so readers see it), bare encode again. Goal (issue #3):
pipeline / encode ≤ 1.25. `--backend` picks the vector store (edge: the embedded default, Qdrant's in-process
engine; qdrant-local: qdrant-client local mode). `--zenml` also times the same pipeline run through ZenML on a
second fresh store (orchestration overhead).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from feature_env import bench_settings, load_articles, machine, synthetic_articles


@click.command()
@click.option("--articles", default=80, show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option("--batch-chunks", default=512, show_default=True, help="Chunks embedded per pipeline batch.")
@click.option("--repeats", default=2, show_default=True, help="Alternating encode/pipeline rounds (min is kept).")
@click.option("--backend", type=click.Choice(["edge", "qdrant-local"]), default="edge", show_default=True)
@click.option("--zenml", "with_zenml", is_flag=True, help="Also time a ZenML run of the pipeline.")
@click.option("--output", default="bench/results/feature_ingestion.json", type=click.Path(path_type=Path))
def main(
    articles: int, seed: int, batch_chunks: int, repeats: int, backend: str, with_zenml: bool, output: Path
) -> None:
    machine_at_start = machine()
    with bench_settings() as settings:
        from llm_engineering.infrastructure.embeddings import get_embedding_model
        from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse
        from llm_engineering.infrastructure.qdrant import get_feature_store, vector_store_backend
        from llm_engineering.wiring import Container

        def store_settings(name: str):
            """The bench's settings on a fresh vector-store folder of the chosen backend."""
            key = "qdrant_path" if backend == "qdrant-local" else "qdrant_edge_path"
            return settings.model_copy(update={key: settings.data_dir / f"{backend}-{name}"})

        def run_pipeline(run_settings, **options) -> tuple:
            """One feature run as the CLI does it (the composition root's service), then close: the embedded
            store publishes its version (what readers see) and releases its writer lock."""
            container = Container(run_settings)
            started = time.perf_counter()
            run_report = container.feature_engineering(show_progress=False, **options).run("all")
            run_s = time.perf_counter() - started
            container.close()
            return run_report, time.perf_counter() - started, run_s

        corpus = synthetic_articles(articles, seed=seed)
        warehouse = MongoWarehouse(settings=settings)
        started = time.perf_counter()
        load_articles(warehouse, corpus)
        load_s = time.perf_counter() - started

        model = get_embedding_model(settings)
        started = time.perf_counter()
        model.encode(["warm up the model"])
        model_load_s = time.perf_counter() - started

        # The exact chunk texts the pipeline will embed (chunking is deterministic).
        from llm_engineering.application.preprocessing.chunking import chunk_document
        from llm_engineering.application.preprocessing.cleaning import clean_document
        from llm_engineering.domain.types import DataCategory

        documents = warehouse.find_documents(DataCategory.ARTICLES)
        texts = [c.text for d in documents for c in chunk_document(clean_document(d), model)]

        def bare_encode() -> float:
            started = time.perf_counter()
            model.encode(texts)
            return time.perf_counter() - started

        # Alternate encode / pipeline so both see the same (possibly shared, noisy) machine; report the minimum
        # of each, the least disturbed measurement of the same deterministic work.
        encode_runs, pipeline_runs, publish_runs, embed_runs = [], [], [], []
        report = None
        for rep in range(repeats):
            encode_runs.append(bare_encode())
            rep_settings = store_settings(f"rep{rep}")
            assert vector_store_backend(rep_settings) == backend
            report, total_s, run_s = run_pipeline(rep_settings, batch_chunks=batch_chunks)
            pipeline_runs.append(total_s)
            publish_runs.append(total_s - run_s)
            embed_runs.append(report.timings_s.get("embed", 0.0))
            assert report.chunks_written == len(texts), (report.chunks_written, len(texts))
        encode_runs.append(bare_encode())
        encode_s, pipeline_s = min(encode_runs), min(pipeline_runs)

        rerun, rerun_s, _ = run_pipeline(rep_settings)
        store = get_feature_store(rep_settings)  # reopened as a reader would
        points_in_store = store.count_chunks()

        result = {
            "benchmark": "feature_ingestion",
            "corpus": {
                "articles": articles,
                "seed": seed,
                "words": sum(len(a["content"].split()) for a in corpus),
                "chunks": len(texts),
                "tokens": report.tokens,
            },
            "vector_store": backend,
            "embedding_model": settings.embedding_model_id,
            "embedding_batch_size": settings.embedding_batch_size,
            "pipeline_batch_chunks": batch_chunks,
            "warehouse_load_s": round(load_s, 2),
            "model_load_s": round(model_load_s, 2),
            "bare_encode_s": round(encode_s, 2),
            "pipeline_s": round(pipeline_s, 2),
            "all_runs_s": {
                "bare_encode": [round(x, 2) for x in encode_runs],
                "pipeline": [round(x, 2) for x in pipeline_runs],
                "of_which_publish_and_close": [round(x, 2) for x in publish_runs],
            },
            "ratio_pipeline_over_encode": round(pipeline_s / encode_s, 3),
            "goal_ratio": 1.25,
            # On a busy shared machine the same encode varies by 1.5x between runs, which swamps the ratio. The
            # pipeline's own work is everything but its embed stage: this is what it adds to a bare encode.
            "pipeline_outside_embed_s": [round(t - e, 2) for t, e in zip(pipeline_runs, embed_runs, strict=True)],
            "ratio_encode_plus_pipeline_work": round(
                (encode_s + min(t - e for t, e in zip(pipeline_runs, embed_runs, strict=True))) / encode_s, 3
            ),
            "pipeline_chunks_per_s": round(len(texts) / pipeline_s, 1),
            "bare_encode_chunks_per_s": round(len(texts) / encode_s, 1),
            "pipeline_stage_s": report.timings_s,
            "truncated_chunks": report.truncated_chunks,
            "max_chunk_tokens": report.max_chunk_tokens,
            "incremental_rerun": {
                "seconds": round(rerun_s, 2),
                "unchanged": rerun.unchanged,
                "chunks_written": rerun.chunks_written,
            },
            "points_in_store": points_in_store,
            "machine": machine_at_start | {"load_average_at_end": machine()["load_average_at_start"]},
        }

        if with_zenml:
            from llm_engineering.infrastructure.zenml_env import configure_zenml

            configure_zenml(settings)
            from llm_engineering.infrastructure.qdrant import close_qdrant_clients

            close_qdrant_clients()  # the ZenML steps open the default store (DATA_DIR/qdrant-edge), still empty
            from pipelines.feature_engineering import feature_engineering

            started = time.perf_counter()
            feature_engineering.with_options(enable_cache=False)(author_full_names=["all"])
            close_qdrant_clients()  # publish, as the CLI's exit does
            zenml_s = time.perf_counter() - started
            result["zenml_pipeline_s"] = round(zenml_s, 2)
            result["ratio_zenml_over_encode"] = round(zenml_s / encode_s, 3)

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
