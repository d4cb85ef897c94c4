"""Run the `embedding_training` pipeline: adapt the embedding model to the author's corpus and register it.

python -m tools.train_embedder --config configs/embedding_training.yaml [--dataset DIR|VERSION] [--no-zenml]

Needs the feature store (the passages and the index that mines hard negatives) and a generated dataset (default:
the newest under DATA_DIR/datasets). Registers embedder:vN only when it beats the base model on the dataset's
test split; then `EMBEDDING_MODEL_ID=embedder` + the feature pipeline re-embed the collection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from llm_engineering.application.tables import format_key_values
from tools._cli import bootstrap, check_input_file, run_cli, run_pipeline


def run_embedding_training(settings: Any, config: Any, dataset_dir: Path, use_zenml: bool = True) -> tuple[Any, str]:
    """Adapt through the ZenML pipeline (or in this process) and return (EmbedderRunReport, title)."""
    if not use_zenml:
        from llm_engineering.wiring.embedding_training import train_embedder

        return train_embedder(config, dataset_dir, settings=settings)[0], "Embedder adaptation (in-process)"
    from pipelines.embedding_training import EMBEDDER_MODEL, embedding_training

    model = EMBEDDER_MODEL.model_copy(update={"name": config.output.name})
    run, report = run_pipeline(
        embedding_training, "adapt_embedder", "embedder_report", {"model": model},
        config=config.model_dump(mode="json"), dataset_dir=str(dataset_dir),
    )  # fmt: skip
    return report, f"Embedder adaptation run {run.name}"


def summary_rows(report: Any) -> list[tuple[str, object]]:
    metric = report.metric
    after = (report.after or {}).get(metric)
    return [
        ("base model", report.base_model),
        ("dataset", f"{report.dataset['version']} (sha256 {report.dataset['hash'][:12]})"),
        ("examples", f"{report.examples['train']['examples']} train, {report.examples['test']['examples']} test"),
        ("passages", report.passages),
        (f"test {metric}", f"{report.before.get(metric)} -> {after}"),
        ("test hit@5", f"{report.before.get('hit@5')} -> {(report.after or {}).get('hit@5')}"),
        ("training", f"{report.training.get('steps')} steps, {report.training.get('train_seconds')} s"),
        ("registered", report.registered or f"no: {report.refused}"),
    ]


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Embedder config YAML.")
@click.option("--dataset", default=None, help="Dataset folder or version name (default: the newest generated one).")
@click.option("--no-zenml", is_flag=True, help="Run the same stages in this process, without ZenML tracking.")
@click.option("--verbose", is_flag=True)
def main(config_path: Path, dataset: str | None, no_zenml: bool, verbose: bool) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = bootstrap(verbose)
    from llm_engineering.application.datasets.reader import read_dataset_splits, resolve_dataset_dir
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.infrastructure.ml.embedding_training import load_embedding_training_config
    from llm_engineering.wiring import get_container

    try:
        config = load_embedding_training_config(check_input_file(config_path, "config"))
        dataset_dir = resolve_dataset_dir(get_container(settings).artifacts("datasets"), dataset)
        read_dataset_splits(dataset_dir, need_preference=False, need_test=True)  # fails before any work
        report, title = run_embedding_training(settings, config, dataset_dir, use_zenml=not no_zenml)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\n{title}:\n{format_key_values(summary_rows(report))}")
    if report.registered:
        click.echo(
            f"\nUse it: EMBEDDING_MODEL_ID={report.registered.split(':')[0]} (or {report.registered}), then "
            "`poe run-feature-engineering-pipeline` re-embeds the collection."
        )


if __name__ == "__main__":
    run_cli(main)
