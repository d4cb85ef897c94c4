"""Run the `training` pipeline: SFT -> merge -> DPO -> merge -> register the twin (ZenML + filesystem registry).

python -m tools.train --config configs/training.yaml [--dataset DIR|VERSION] [--max-steps N] [--no-zenml]

Default dataset: the newest generated one under DATA_DIR/datasets (`poe run-generate-datasets` makes them).
Re-running after an interruption resumes from the last checkpoint of the same config and dataset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from llm_engineering.application.tables import format_key_values
from tools._cli import bootstrap, check_input_file, run_cli, run_pipeline


def run_training(
    settings: Any, config: Any, dataset_dir: Path, max_steps: int | None, use_zenml: bool = True
) -> tuple[Any, str]:
    """Train through the ZenML pipeline (or in this process) and return (TrainingReport, title)."""
    if not use_zenml:
        from llm_engineering.wiring.training import train_twin

        return train_twin(config, dataset_dir, max_steps, settings=settings), "Training (in-process)"
    from pipelines.training import TWIN_MODEL, training

    model = TWIN_MODEL.model_copy(update={"name": config.output.name})
    run, report = run_pipeline(
        training, "register_twin", "training_report", {"model": model},
        config=config.model_dump(mode="json"), dataset_dir=str(dataset_dir), max_steps=max_steps,
    )  # fmt: skip
    return report, f"Training run {run.name}"


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Training config YAML.")
@click.option("--dataset", default=None, help="Dataset folder or version name (default: the newest generated one).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap SFT and DPO at N optimizer steps.")
@click.option("--no-zenml", is_flag=True, help="Run the same stages in this process, without ZenML tracking.")
@click.option("--verbose", is_flag=True)
def main(config_path: Path, dataset: str | None, max_steps: int | None, no_zenml: bool, verbose: bool) -> None:
    # Before torch loads: idle OpenMP threads sleep instead of spinning. On a small shared CPU, spinning threads
    # made small forward passes ~15x slower (measured, docs/training.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = bootstrap(verbose)
    from llm_engineering.application.datasets.reader import load_training_data, resolve_dataset_dir
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.infrastructure.ml.training.config import load_training_config
    from llm_engineering.infrastructure.model_check import check_model_available
    from llm_engineering.wiring import get_container

    try:
        config = load_training_config(check_input_file(config_path, "config"))
        if "/" not in config.model or Path(config.model).expanduser().exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a packaged, registered or local model: nothing to fetch
        # Before any work (no run folder, tracker archive or ZenML run yet): the model exists, the dataset reads.
        check_model_available(config.model, settings, setting=f"{config_path}: model")
        dataset_dir = resolve_dataset_dir(get_container(settings).artifacts("datasets"), dataset)
        load_training_data(dataset_dir, need_preference=config.dpo.enabled)
        report, title = run_training(settings, config, dataset_dir, max_steps, use_zenml=not no_zenml)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\n{title}:\n{format_key_values(report.summary_rows())}")
    if report.registered:
        click.echo(
            f"\nServe it: LLM_MODEL_ID={report.registered.name} (or {report.registered.name}:"
            f"{report.registered.version}; {report.registered.name}-sft for the SFT stage)."
        )


if __name__ == "__main__":
    run_cli(main)
