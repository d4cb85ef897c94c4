"""`poe run-twin-refresh`: from the authors' new writing to a promoted, hot-switched twin, in one ZenML pipeline.

    python -m tools.twin_refresh --config configs/twin_refresh.yaml [--max-steps N] [--learning-rate LR]
                                 [--force] [--no-switch]

Collects new writing (the ETL configs' links, archives and feeds), updates the features incrementally, and stops
there when nothing changed since the last completed refresh. Otherwise: a new dataset version (cached generations
re-used), SFT + DPO, registration, evaluation against the base and the production twin, the promotion gate, and
the serving switch (a second engine loads the new version, traffic moves, the old one drains). A lock keeps two
refreshes from overlapping; a killed refresh is redone by the next run (docs/refresh.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from tools._cli import bootstrap, check_input_file, run_cli, run_pipeline

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def stage_parameters(config: Any, max_steps: int | None, learning_rate: float | None) -> dict[str, Any]:
    """Every stage config, read and validated before any work (an error names the file and the key), as the
    plain mappings the pipeline records as its parameters."""
    from llm_engineering.application.evaluation.config import load_evaluation_config
    from llm_engineering.infrastructure.ml.training.config import load_training_config
    from tools.etl import read_etl_config
    from tools.features import read_feature_config
    from tools.generate_datasets import read_dataset_config

    paths = config.stage_configs(PROJECT_ROOT)
    for key, path in paths.items():
        check_input_file(path, f"parameters.{key}")
    features = read_feature_config(paths["features_config"])
    datasets = read_dataset_config(paths["datasets_config"])
    training = load_training_config(paths["training_config"])
    if learning_rate is not None:
        training = training.model_copy(
            update={
                "sft": training.sft.model_copy(update={"learning_rate": learning_rate}),
                "dpo": training.dpo.model_copy(update={"learning_rate": learning_rate}),
            }
        )
    evaluation = load_evaluation_config(paths["evaluation_config"])
    etl = []
    for path in config.etl_paths(PROJECT_ROOT):
        params = read_etl_config(check_input_file(path, "parameters.etl_configs"))
        etl.append({"user_full_name": params.user_full_name, "links": params.links, "sources": params.sources()})
    return {
        "authors": config.authors,
        "etl": etl,
        "features": features.model_dump(mode="json"),
        "datasets": datasets.model_dump(mode="json", exclude_none=True),
        "training": training.model_dump(mode="json"),
        "evaluation": evaluation.model_dump(mode="json"),
        "dataset_llm": config.dataset_llm,
        "training_mode": config.training.model_dump(mode="json"),
        "switch_serving": config.switch_serving,
        "max_steps": max_steps,
    }


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Refresh config YAML.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap SFT and DPO at N optimizer steps.")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the SFT and DPO learning rates of the training config.")  # fmt: skip
@click.option("--force", is_flag=True, help="Refresh even when nothing changed since the last completed refresh.")
@click.option("--no-switch", is_flag=True, help="Promote (when the gate passes) but leave the serving side as it is.")
@click.option("--verbose", is_flag=True)
def main(
    config_path: Path, max_steps: int | None, learning_rate: float | None, force: bool, no_switch: bool, verbose: bool
) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as tools/train.py: idle OpenMP threads must not spin
    settings = bootstrap(verbose)
    from llm_engineering.application.refresh.config import load_refresh_config
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.wiring.refresh import production_version, refresh_ledger

    try:
        config = load_refresh_config(check_input_file(config_path, "config"))
        parameters = stage_parameters(config, max_steps, learning_rate)
        if no_switch:
            parameters["switch_serving"] = False
        name = parameters["training"]["output"]["name"]
        with refresh_ledger(settings).lock():
            from pipelines.twin_refresh import twin_refresh

            run, report = run_pipeline(
                twin_refresh, "record_refresh", "refresh_report",
                production_before=production_version(settings, name), force=force, **parameters,
            )  # fmt: skip
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\nTwin refresh {run.name}:\n{report.summary_table()}")
    if report.outcome == "nothing_new":
        click.echo("Nothing new since the last refresh: stopped after the features step (--force refreshes anyway).")


if __name__ == "__main__":
    run_cli(main)
