"""Thin ZenML steps that only the twin refresh has; the logic is in llm_engineering.wiring.refresh. Every other
step of the refresh is the feature, dataset, training and evaluation pipelines' own."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step

from llm_engineering.application.evaluation.results import PromotionDecision
from llm_engineering.application.preprocessing.features import WarehouseSnapshot
from llm_engineering.application.refresh.changes import CorpusChanges
from llm_engineering.application.refresh.report import RefreshReport
from llm_engineering.domain.datasets import DatasetReport
from llm_engineering.infrastructure.ml.training.run import TrainingReport
from llm_engineering.settings import get_settings


@step(enable_cache=False)
def detect_new_writing(snapshot: WarehouseSnapshot, force: bool = False) -> Annotated[CorpusChanges, "corpus_changes"]:
    from llm_engineering.wiring.refresh import detect_changes

    changes = detect_changes(get_settings(), snapshot.authors, snapshot.versions, force=force)
    log_metadata(metadata={"changes": changes.counts(), "first_run": changes.first_run, "summary": changes.summary()})
    return changes


@step(enable_cache=False)
def start_dataset_llm(model_spec: str) -> Annotated[dict[str, Any], "dataset_llm"]:
    from llm_engineering.wiring.refresh import start_dataset_llm as start

    endpoint = start(get_settings(), model_spec)
    log_metadata(metadata={"dataset_llm": endpoint})
    return endpoint


@step(enable_cache=False)
def stop_dataset_llm(endpoint: dict[str, Any], dataset: DatasetReport) -> Annotated[bool, "dataset_llm_stopped"]:
    from llm_engineering.wiring.refresh import stop_dataset_llm as stop

    # `dataset` orders this step after the dataset was written (and says what it cost).
    log_metadata(metadata={"dataset_version": dataset.version, "llm_calls": dataset.llm_calls})
    return stop(get_settings(), endpoint)


@step(enable_cache=False)
def plan_continued_training(
    dataset: DatasetReport, changes: CorpusChanges, model_name: str, replay_share: float, seed: int = 42
) -> Annotated[dict[str, Any], "continued_training"]:
    from llm_engineering.wiring.refresh import continued_training

    plan = continued_training(get_settings(), dataset.output_dir, changes, model_name, replay_share, seed)
    log_metadata(metadata={"continued_training": {**plan, "replay_share": replay_share}})
    return plan


@step(enable_cache=False)
def serve_production(
    promotion: PromotionDecision, training: TrainingReport, switch: bool = True
) -> Annotated[dict[str, Any], "serving"]:
    from llm_engineering.wiring.refresh import serve_production as serve

    serving = serve(get_settings(), promotion, training.model_name, switch)
    log_metadata(metadata={"serving": serving})
    return serving


@step(enable_cache=False)
def record_refresh(
    changes: CorpusChanges,
    production_before: str | None = None,
    dataset: DatasetReport | None = None,
    training: TrainingReport | None = None,
    promotion: PromotionDecision | None = None,
    evaluation_dir: str | None = None,
    serving: dict[str, Any] | None = None,
) -> Annotated[RefreshReport, "refresh_report"]:
    from llm_engineering.wiring.refresh import production_version
    from llm_engineering.wiring.refresh import record_refresh as record

    settings = get_settings()
    name = training.model_name if training else "llm-twin"
    promoted = promotion is not None and promotion.applied
    report = RefreshReport(
        outcome="nothing_new" if dataset is None else ("promoted" if promoted else "not_promoted"),
        authors=changes.authors,
        changes=changes.counts(),
        dataset_version=dataset.version if dataset else None,
        dataset_llm_calls=dataset.llm_calls if dataset else {},
        dataset_cache_hits=dataset.cache_hits if dataset else {},
        candidate=f"{name}:{training.registered.version}" if training and training.registered else None,
        production_before=production_before,
        production_after=production_version(settings, name),
        decision=promotion.model_dump(mode="json", include={"promote", "applied", "deciding_rule", "reason", "rules"})
        if promotion
        else {},
        evaluation_report=evaluation_dir,
        serving=serving or {},
    )
    record(settings, changes, report)
    metadata = report.model_dump(mode="json", exclude_none=True)  # ZenML metadata has no null
    log_metadata(metadata=metadata)
    log_metadata(metadata=metadata, run_id_name_or_prefix=get_step_context().pipeline_run.id)
    return report
