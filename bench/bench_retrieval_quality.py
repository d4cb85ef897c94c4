"""Retrieval quality on the sample corpus: hit@1/5/10 and MRR@10 per mode and per question kind.

    .venv/bin/python bench/bench_retrieval_quality.py [--qa data/sample/qa.jsonl] [--k 10]
        [--output bench/results/retrieval_quality_sample.json]

Imports data/sample into a fresh warehouse, runs the feature pipeline in-process, evaluates every mode
(hybrid+rerank too when RERANKER_MODEL_ID is set). Writes the JSON and the per-question CSV beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from feature_env import SAMPLE, bench_settings, machine


@click.command()
@click.option("--qa", "qa_path", default=str(SAMPLE / "qa.jsonl"), type=click.Path(path_type=Path))
@click.option("--k", default=10, show_default=True)
@click.option("--output", default="bench/results/retrieval_quality_sample.json", type=click.Path(path_type=Path))
def main(qa_path: Path, k: int, output: Path) -> None:
    with bench_settings() as settings:
        from llm_engineering.application.evaluation.retrieval import evaluate_retrieval, load_qa, write_evaluation
        from llm_engineering.application.warehouse.transfer import import_warehouse
        from llm_engineering.wiring import get_container

        container = get_container(settings)
        import_warehouse(container.warehouse, SAMPLE, show_progress=False)
        report = container.feature_engineering(show_progress=False).run("all")
        modes = container.retriever().available_modes()
        evaluation = evaluate_retrieval(container.search_service, load_qa(qa_path), k=k, modes=modes)
        evaluation.metadata = {
            "qa": str(qa_path),
            "corpus": "data/sample",
            "chunks": report.chunks_total,
            "embedding_model": settings.embedding_model_id,
            "reranker": settings.reranker_model_id or "none (fused hybrid ranking)",
            "machine": machine(),
        }
        write_evaluation(evaluation, output)
    click.echo(json.dumps(evaluation.model_dump(), indent=2))


if __name__ == "__main__":
    main()
