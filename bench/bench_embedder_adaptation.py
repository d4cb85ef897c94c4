"""Embedder adaptation (issue #20): retrieval before/after fine-tuning the embedder on the twin's generated
(question -> passage) pairs, per mode, per half, per kind, on the rag_blogs evaluation set and on the sample set.

    .venv/bin/python bench/bench_embedder_adaptation.py --rag-blogs-dataset DIR [--sample-dataset DIR]
        [--config configs/embedding_training.yaml] [--output bench/results/embedder_adaptation.json]

Per corpus, through the real pipeline: import the export folder into a throw-away warehouse, index it with the
base model (`FeatureEngineering`), evaluate dense / sparse / hybrid with the held-out questions (`qa.jsonl`, never
used for training) through the `SearchService` (author filter resolved from the question), run
`train_embedder` on the generated dataset (its train split: pairs + hard negatives mined from that index; its
test split: the registration gate), re-index with `EMBEDDING_MODEL_ID=embedder` (the feature pipeline re-embeds
every document because the model changed), evaluate again, and measure the fusion variants on the adapted index
(weights, RRF k, prefetch depth) on the dev half, reporting the test half. Vectors are cached per (weights, text)
(data/local/bench-cache/embeddings/), so the re-index reuses what the gate's evaluation embedded.

The datasets come from `poe run-generate-datasets` on the same corpus (the packaged SmolLM2-135M writes the
questions; the answers are the authors' text): the file records their path, version and hash.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import click
from bench_retrieval_ablation import (
    EMBEDDING_CACHE,
    RAG_BLOGS,
    CachedEmbedder,
    ClientVariant,
    chunk_rrf,
    rounded,
    split_metrics,
)
from feature_env import ROOT, SAMPLE, bench_settings, machine

MODES = ("dense", "sparse", "hybrid")


def weights_key(path: str) -> str:
    """The identity of a model's weights (a file hash): the base and a registered version share nothing."""
    digest = hashlib.sha256()
    for name in sorted(Path(path).glob("*.safetensors")):
        digest.update(name.read_bytes())
    return digest.hexdigest()[:16]


class KeyedCache(CachedEmbedder):
    """CachedEmbedder keyed by the weights (not the model id), so the gate's evaluation and the re-index share."""

    def __init__(self, inner: Any, key: str) -> None:
        super().__init__(inner, EMBEDDING_CACHE)
        self.key = key

    def _path(self, text: str, kind: str) -> Path:
        digest = hashlib.sha1(f"{self.key}\x00{kind}\x00{text}".encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"


def cached_encoder(settings: Any) -> Any:
    from llm_engineering.infrastructure.embeddings import EmbeddingModel

    def factory(model_id: str, path: str) -> KeyedCache:
        inner = EmbeddingModel(model_id, settings.embedding_device, settings.embedding_batch_size, path=path)
        return KeyedCache(inner, weights_key(inner.path))

    return factory


def evaluate(container: Any, retriever: Any, items: list, k: int, modes: tuple[str, ...]) -> dict[str, Any]:
    from llm_engineering.application.evaluation.retrieval import evaluate_retrieval
    from llm_engineering.application.rag.search import SearchService

    started = time.perf_counter()
    evaluation = evaluate_retrieval(SearchService(retriever, container.authors), items, k=k, modes=modes)
    return {
        "overall": rounded(evaluation.overall),
        "per_kind": rounded(evaluation.per_kind),
        "halves": rounded(split_metrics(evaluation.rows, k)),
        "author_filter": rounded(evaluation.author_filter),
        "seconds": round(time.perf_counter() - started, 1),
    }


FUSION_VARIANTS = {
    "RRF k=60 (store default)": chunk_rrf(60),
    "RRF k=10": chunk_rrf(10),
    "RRF k=30": chunk_rrf(30),
    "RRF dense weight 1.5": chunk_rrf(60, (1.5, 1.0)),
    "RRF dense weight 2": chunk_rrf(60, (2.0, 1.0)),
    "RRF sparse weight 1.5": chunk_rrf(60, (1.0, 1.5)),
    "RRF prefetch depth 20": chunk_rrf(60, depth=20),
    "RRF prefetch depth 50": chunk_rrf(60, depth=50),
}


def index(container: Any, encoder: Any) -> dict[str, Any]:
    from llm_engineering.application.preprocessing.features import FeatureEngineering

    started = time.perf_counter()
    before = encoder.embedded
    report = FeatureEngineering(container.warehouse, container.feature_store, encoder, show_progress=False).run("all")
    return {
        "model": encoder.model_id,
        "chunks": report.chunks_total,
        "changed_or_new": report.new + report.changed,
        "texts_embedded_this_run": encoder.embedded - before,
        "seconds": round(time.perf_counter() - started, 1),
    }


def query_latency_ms(encoder: Any, items: list) -> dict[str, float]:
    from common import latency_summary

    inner = encoder.inner
    inner.encode_query("warm up")
    samples = []
    for item in items[:50]:
        started = time.perf_counter()
        inner.encode_query(item.question)
        samples.append(time.perf_counter() - started)
    return latency_summary([s * 1000 for s in samples])


def run_corpus(name: str, folder: Path, qa_path: Path, dataset: Path, config: Any, k: int) -> dict[str, Any]:
    from llm_engineering.application.evaluation.retrieval import load_qa
    from llm_engineering.application.rag.retriever import HybridRetriever
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.wiring import Container
    from llm_engineering.wiring.embedding_training import train_embedder

    items = load_qa(qa_path)
    out: dict[str, Any] = {"qa": str(qa_path.relative_to(ROOT)), "questions": len(items), "dataset": str(dataset)}
    with bench_settings() as settings:
        settings = settings.model_copy(update={"mongodb_database": f"bench_{name}"})
        base = Container(settings)
        import_warehouse(base.warehouse, folder, show_progress=False)
        factory = cached_encoder(settings)
        encoder = factory(base.embedder.model_id, base.embedder.path)
        out["index_before"] = index(base, encoder)
        click.echo(f"[{name}] indexed with the base model: {out['index_before']}", err=True)
        out["before"] = evaluate(base, HybridRetriever(base.feature_store, encoder), items, k, MODES)
        out["query_encode_ms_before"] = query_latency_ms(encoder, items)

        started = time.perf_counter()
        report, registered = train_embedder(config, dataset, settings, encoder_factory=factory)
        wall_s = round(time.perf_counter() - started, 1)
        out["adaptation"] = {**report.model_dump(exclude={"dataset"}), "wall_s": wall_s}
        out["dataset_info"] = report.dataset
        click.echo(f"[{name}] adaptation: {report.before} -> {report.after}; {report.registered or report.refused}")
        if registered is None:
            return out
        tuned = Container(settings.model_copy(update={"embedding_model_id": "embedder"}))
        tuned_encoder = factory(tuned.embedder.model_id, tuned.embedder.path)
        out["index_after"] = index(tuned, tuned_encoder)
        out["after"] = evaluate(tuned, HybridRetriever(tuned.feature_store, tuned_encoder), items, k, MODES)
        out["query_encode_ms_after"] = query_latency_ms(tuned_encoder, items)
        out["fusion_variants"] = {}
        for label, rank in FUSION_VARIANTS.items():
            retriever = ClientVariant(tuned.feature_store, tuned_encoder, rank)
            out["fusion_variants"][label] = evaluate(tuned, retriever, items, k, ("hybrid",))
        tuned.close()
        base.close()
    return out


@click.command()
@click.option("--rag-blogs-dataset", type=click.Path(path_type=Path), default=None)
@click.option("--sample-dataset", type=click.Path(path_type=Path), default=None)
@click.option("--config", "config_path", default="configs/embedding_training.yaml", type=click.Path(path_type=Path))
@click.option("--k", default=10, show_default=True)
@click.option("--output", default="bench/results/embedder_adaptation.json", type=click.Path(path_type=Path))
def main(rag_blogs_dataset: Path | None, sample_dataset: Path | None, config_path: Path, k: int, output: Path) -> None:
    from llm_engineering.infrastructure.ml.embedding_training import load_embedding_training_config

    config = load_embedding_training_config(config_path)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "what": "retrieval before/after the embedder adaptation (issue #20); k=10, documents de-duplicated; "
        "no reranker; author filter resolved from each question by the search service",
        "halves": "questions split by document (sha1 of the link, even = dev, odd = test)",
        "config": config.model_dump(mode="json"),
    }
    if rag_blogs_dataset:
        result["rag_blogs"] = run_corpus("rag_blogs", RAG_BLOGS, RAG_BLOGS / "qa.jsonl", rag_blogs_dataset, config, k)
    if sample_dataset:
        result["sample"] = run_corpus("sample", SAMPLE, SAMPLE / "qa.jsonl", sample_dataset, config, k)
    result["machine"] = machine()
    result["seconds"] = round(time.perf_counter() - started, 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    click.echo(f"wrote {output}")


if __name__ == "__main__":
    main()
