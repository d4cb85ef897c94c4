"""Thin ZenML steps of the training pipeline; the logic is in llm_engineering.wiring.training.

The weights stay on disk (the run dir, then the registry); the step artifacts are small pydantic results
(paths, metrics, loss curves) that ZenML links to the `llm-twin` model version of the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step

from llm_engineering.infrastructure.ml.training.common import StageResult
from llm_engineering.infrastructure.ml.training.run import TrainingReport, TrainingRun


def _numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool) and v is not None}


@step(enable_cache=False)
def prepare_training_run(
    config: dict[str, Any], dataset_dir: str | None = None, max_steps: int | None = None
) -> Annotated[TrainingRun, "training_run"]:
    from llm_engineering.infrastructure.ml.training.config import parse_training_config
    from llm_engineering.wiring.training import plan_training_run

    run = plan_training_run(parse_training_config(config), dataset_dir, max_steps=max_steps)
    log_metadata(
        metadata={
            "run_key": run.run_key,
            "dataset_version": run.dataset.version,
            "dataset_hash": run.dataset.hash,
            "dataset_path": run.dataset.path,
            "dataset_counts": run.dataset.counts,
            "authors": run.dataset.authors,
            "backend": run.plan.model_dump(),
            "base_model": run.base_model,
            "hyperparameters": run.config.model_dump(mode="json"),
        }
    )
    return run


@step(enable_cache=False)
def train_sft(run: TrainingRun) -> Annotated[StageResult, "sft_result"]:
    from llm_engineering.wiring.training import run_sft_stage

    result = run_sft_stage(run)
    log_metadata(metadata={"sft": _numbers(result.metrics), "resumed_from": str(result.resumed_from)})
    return result


@step(enable_cache=False)
def train_dpo(run: TrainingRun, sft: StageResult) -> Annotated[StageResult, "dpo_result"]:
    from llm_engineering.wiring.training import run_dpo_stage

    result = run_dpo_stage(run, sft)
    if result is None:  # the pipeline only wires this step when dpo.enabled
        raise RuntimeError("train_dpo was called with dpo.enabled: false")
    log_metadata(metadata={"dpo": _numbers(result.metrics), "resumed_from": str(result.resumed_from)})
    return result


@step(enable_cache=False)
def register_twin(
    run: TrainingRun, sft: StageResult, dpo: StageResult | None = None
) -> Annotated[TrainingReport, "training_report"]:
    from llm_engineering.infrastructure.registry import register_in_zenml, update_manifest
    from llm_engineering.wiring.training import finish_run, write_report

    report = finish_run(run, sft, dpo, wall_s=None)
    metadata = {
        "metrics": report.metrics(),
        "dataset_version": report.dataset.version,
        "dataset_hash": report.dataset.hash,
        "dataset_counts": report.dataset.counts,
        "base_model": run.config.model,
        "backend": report.backend.name,
        "hyperparameters": report.config,
        "model_path": report.model_path,
        "sft_model_path": report.sft_model_path,
        "registry_version": report.registered.version if report.registered else "not registered",
        "tracking": {k: str(v) for k, v in report.tracking.items()},
        "versions": report.environment,
    }
    if report.registered:
        report.zenml = register_in_zenml(report.registered, metadata)
        if report.zenml:
            update_manifest(
                Path(run.models_dir), report.registered.version, {"zenml": report.zenml}, name=report.registered.name
            )
            report.registered.manifest["zenml"] = report.zenml
    write_report(report)
    log_metadata(metadata=metadata)
    return report
