"""Retrieval evaluation: hit@1/5/10 and MRR@10 per mode (dense, sparse, hybrid, hybrid+rerank when configured).

python -m tools.evaluate_retrieval --qa data/sample/qa.jsonl --k 10 --output data/local/eval/retrieval.json
Writes the metrics JSON and a per-question CSV beside it.
"""

from __future__ import annotations

from pathlib import Path

import click

from tools._cli import bootstrap


@click.command()
@click.option("--qa", "qa_path", required=True, type=click.Path(path_type=Path), help="QA set (JSONL).")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Metrics JSON (CSV goes beside it).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["dense", "sparse", "hybrid", "rerank"]))
@click.option("--verbose", is_flag=True)
def main(qa_path: Path, k: int, output: Path, modes: tuple[str, ...], verbose: bool) -> None:
    settings = bootstrap(verbose)
    from llm_engineering.application.evaluation.retrieval import evaluate_retrieval, load_qa, write_evaluation
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.wiring import get_container

    try:
        items = load_qa(qa_path)
        container = get_container(settings)
        if not container.feature_store.exists():
            raise click.ClickException("the feature store is empty: run `poe run-feature-engineering-pipeline` first")
        chosen = list(modes) or container.retriever().available_modes()
        # The search service resolves the author filter from each question, as /search and /rag do.
        evaluation = evaluate_retrieval(container.search_service, items, k=k, modes=chosen)
        evaluation.metadata = {
            "qa": str(qa_path),
            "embedding_model": settings.embedding_model_id,
            "reranker": settings.reranker_model_id or "none (fused hybrid ranking)",
        }
        json_path, csv_path = write_evaluation(evaluation, output)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    metric_names = [name for name in next(iter(evaluation.overall.values())) if name != "questions"]
    click.echo(f"\n{len(items)} questions, k={k}")
    click.echo(f"  {'mode':<8}" + "".join(f"{m:>10}" for m in metric_names))
    for mode, values in evaluation.overall.items():
        label = "hybrid+rerank" if mode == "rerank" else mode
        click.echo(f"  {label:<8}" + "".join(f"{values[m]:>10.3f}" for m in metric_names))
    click.echo(f"\nmetrics: {json_path}\nper question: {csv_path}")


if __name__ == "__main__":
    main()
