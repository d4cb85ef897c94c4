"""The evaluation run around the service: plan (resolve models, dataset, QA), promote, report, track.

The ZenML steps (steps/evaluating/) and the in-process path (`run_evaluation`, used by `tools/evaluate.py
--no-zenml` and the tests) call these same functions, so both paths produce the same report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from loguru import logger

from llm_engineering.application.evaluation.config import EvaluationConfig
from llm_engineering.application.evaluation.promotion import decide_gate
from llm_engineering.application.evaluation.report import (
    EvaluationReport,
    build_report,
    build_summary,
)
from llm_engineering.application.evaluation.report_html import write_report
from llm_engineering.application.evaluation.results import (
    PromotionDecision,
)
from llm_engineering.application.evaluation.service import EvaluationPlan, EvaluationService, plan_evaluation
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.ml.model_runtime import (
    apply_promotion,
    resolve_models,
    training_curves,
    with_production,
)
from llm_engineering.settings import PROJECT_ROOT, Settings
from llm_engineering.wiring.container import get_container


def _path(value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() or path.exists() else PROJECT_ROOT / path


def prepare_plan(
    settings: Settings,
    config: EvaluationConfig,
    models: list[str] | None = None,
    dataset: str | None = None,
    qa: str | None = None,
    output: str | None = None,
) -> EvaluationPlan:
    """Resolve and validate everything before any model is loaded: a missing model, dataset or QA file fails
    here with a message that names it."""
    from llm_engineering.application.datasets.reader import resolve_dataset_dir

    specs = models or config.models
    resolved = resolve_models(settings, specs, config.voice.reference_model)
    if config.promotion.enabled:
        resolved = with_production(settings, resolved, config.promotion.candidate)
    dataset_dir = resolve_dataset_dir(get_container(settings).artifacts("datasets"), dataset or config.dataset)
    qa_path = _path(qa or config.qa)
    if qa_path is None or not qa_path.is_file():
        raise ConfigurationError(f"QA file {qa or config.qa} does not exist (pass --qa FILE.jsonl)")
    # Joined by question: a --qa file with other questions simply gets no reference from it.
    references = _path(config.references) if config.references else None
    if references is not None and not references.is_file():
        raise ConfigurationError(f"reference answers file {config.references} does not exist")
    return plan_evaluation(
        config,
        resolved,
        dataset_dir,
        qa_path,
        references,
        output_root=Path(settings.data_dir) / "reports",
        output_dir=_path(output or config.output) if (output or config.output) else None,
    )


def promotion_for(settings: Settings, plan: EvaluationPlan, summary: dict[str, dict[str, Any]]) -> PromotionDecision:
    cfg = plan.config.promotion
    if not cfg.enabled:
        return PromotionDecision(enabled=False, reason="promotion disabled in the config")
    candidate = plan.model(cfg.candidate)
    if candidate is None:
        return PromotionDecision(
            candidate=cfg.candidate, reason=f"{cfg.candidate} was not evaluated: nothing to promote"
        )
    production = plan.model("production")
    decision = decide_gate(
        summary,
        candidate=cfg.candidate,
        candidate_version=(
            candidate.registry_version
            if candidate.registry_name and not candidate.registry_name.endswith("-sft")
            else None
        ),
        metric=cfg.metric,
        min_improvement=cfg.min_improvement,
        production_version=production.registry_version if production else _current_production(settings),
        answering=cfg.answering,
        tolerances={
            "fact_recall": cfg.fact_recall_tolerance,
            "supported": cfg.supported_tolerance,
            "degenerate": cfg.degenerate_tolerance,
        },
        production_metric="voice.new_writing_perplexity" if plan.config.voice.focus_documents else None,
    )
    return apply_promotion(settings, decision, candidate.registry_name)


def _current_production(settings: Settings) -> str | None:
    from llm_engineering.infrastructure.registry import read_pointer

    return read_pointer(settings.models_dir, "llm-twin", "production")


def write_report_files(settings: Settings, report: EvaluationReport) -> dict[str, str]:
    """The report's files: a new version of the reports artifact store (DATA_DIR/reports/<version>, alias
    `latest`, written whole or not at all), or the `--output` folder the user chose."""
    store = get_container(settings).artifacts("reports")
    target = Path(report.output_dir)
    written: dict[str, str] = {}

    def fill(folder: Path, _version: str) -> None:
        written.update(write_report(report, folder))

    if target.resolve() == store.path(report.version).resolve():
        final = store.write(fill, version=report.version)
    else:
        final = store.write_to(target, fill)
    return {kind: str(final / Path(path).name) for kind, path in written.items()}


def publish(settings: Settings, report: EvaluationReport) -> dict[str, Any]:
    """Write report.json / report.html / PNGs, then Comet, Opik and ZenML model-version metadata."""
    from llm_engineering.infrastructure.tracking.evaluation import log_model_version_metadata, log_to_comet, log_to_opik

    paths = write_report_files(settings, report)
    tracking = {
        "comet": log_to_comet(settings, report, enabled=report.config.get("tracking", {}).get("comet", True)),
        "opik": log_to_opik(settings, report, enabled=report.config.get("tracking", {}).get("opik", True)),
        "zenml_model_versions": log_model_version_metadata(report),
    }
    logger.info(f"evaluation report: {paths['html']}")
    return {"paths": paths, "tracking": tracking}


def run_evaluation(
    settings: Settings, service: EvaluationService, plan: EvaluationPlan
) -> tuple[EvaluationReport, dict]:
    """Every phase in this process (no ZenML): voice, generations, judge, retrieval, promotion, report."""
    timings: dict[str, float] = {}

    def timed(name: str, call):
        started = time.monotonic()
        value = call()
        timings[name] = round(time.monotonic() - started, 2)
        return value

    voice = timed("voice", lambda: service.score_voice(plan))
    generations = timed("generation", lambda: service.generate(plan))
    judge = timed("judge", lambda: service.judge(plan, generations))
    retrieval = timed("retrieval", lambda: service.retrieval(plan))
    summary = build_summary([m.name for m in plan.models], voice, generations, judge)
    promotion = promotion_for(settings, plan, summary)
    report = build_report(plan, voice, generations, judge, retrieval, promotion, timings, candidate_training(plan))
    published = publish(settings, report)
    return report, published


def candidate_training(plan: EvaluationPlan) -> dict[str, Any]:
    """The promotion candidate's (else the first registered model's) training curves, for the report."""
    twin = plan.model(plan.config.promotion.candidate) or next((m for m in plan.models if m.registry_version), None)
    return training_curves(twin)
