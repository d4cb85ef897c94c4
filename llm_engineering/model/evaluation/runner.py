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
from llm_engineering.application.evaluation.promotion import decide_for_plan
from llm_engineering.application.evaluation.report import (
    EvaluationReport,
    build_summary,
    compute_style_floor,
    write_report,
)
from llm_engineering.application.evaluation.results import (
    GenerationResult,
    JudgePhase,
    PromotionDecision,
    Skipped,
    VoiceResult,
)
from llm_engineering.application.evaluation.service import EvaluationPlan, EvaluationService, plan_evaluation
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.model.evaluation.runtime import (
    apply_promotion,
    resolve_models,
    training_curves,
    with_production,
)
from llm_engineering.settings import PROJECT_ROOT, Settings


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
    from llm_engineering.model.training.data import resolve_dataset_dir

    specs = models or config.models
    resolved = resolve_models(settings, specs, config.voice.reference_model)
    if config.promotion.enabled:
        resolved = with_production(settings, resolved, config.promotion.candidate)
    dataset_dir = resolve_dataset_dir(settings.data_dir, dataset or config.dataset)
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
    decision = decide_for_plan(
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
    )
    return apply_promotion(settings, decision, candidate.registry_name)


def _current_production(settings: Settings) -> str | None:
    from llm_engineering.model.training.registry import read_pointer

    return read_pointer(settings.models_dir, "llm-twin", "production")


def build_report(
    plan: EvaluationPlan,
    voice: list[VoiceResult],
    generations: list[GenerationResult],
    judge: JudgePhase,
    retrieval: dict[str, Any],
    promotion: PromotionDecision | None,
    timings: dict[str, float] | None = None,
) -> EvaluationReport:
    names = [m.name for m in plan.models]
    merge_ragas_rows(generations, judge)
    summary = build_summary(names, voice, generations, judge)
    skipped = list(judge.skipped)
    for result in judge.results:
        for key, failed in result.metrics.items():
            if key.endswith("_failed") and failed:
                metric = key.removesuffix("_failed")
                errors = [row.get(f"{metric}_error") for row in result.ragas_rows if row.get(f"{metric}_error")]
                reason = f"{int(failed)} of {len(result.ragas_rows)} answers failed" + (
                    f" (first: {errors[0]})" if errors else ""
                )
                skipped.append(Skipped(metric=metric, reason=reason, models=[result.model]))
    for generation in generations:
        if generation.error:
            skipped.append(
                Skipped(metric="generation (style, RAG, speed)", reason=generation.error, models=[generation.model])
            )
    if not plan.questions:
        skipped.append(Skipped(metric="rag.* answer metrics", reason="no QA question with a reference answer"))
    if retrieval.get("skipped"):
        skipped.append(Skipped(metric="retrieval.* and rag.*", reason=str(retrieval["skipped"])))
    voice_only = [m.name for m in plan.models if m.voice_only]
    notes = []
    if voice_only:
        notes.append(f"judge-free scorer metrics only for {voice_only} (DPO reference / current production)")
    if judge.warning:
        notes.append(judge.warning)
    if any(g.rag_answers for g in generations):
        from llm_engineering.application.evaluation.rag_quality import ragas_available

        available, detail = ragas_available()
        implementation = {g.metrics.get("rag.nonllm_implementation_ragas") for g in generations if g.rag_answers}
        if not available or implementation != {1.0}:
            notes.append(
                "non-LLM RAG metrics computed by the built-in implementations (same definitions), not Ragas"
                + (f": Ragas cannot be imported ({detail})" if not available else "")
            )
    twin = plan.model(plan.config.promotion.candidate) or next((m for m in plan.models if m.registry_version), None)
    test_answers = []
    for row in plan.dataset.instruct_test:
        messages = row.get("messages") or []
        test_answers.append(messages[-1]["content"] if messages else row.get("answer", ""))
    return EvaluationReport(
        version=plan.version,
        created_at=plan.created_at,
        output_dir=plan.output_dir,
        models=[m.model_dump() for m in plan.models],
        dataset={"path": plan.dataset.path, "version": plan.dataset.version, "counts": plan.dataset.counts},
        qa={
            "path": plan.qa_path,
            "references": plan.references_path,
            "questions": len(plan.qa),
            "with_reference": sum(1 for q in plan.qa if q.answer),
            "answered": len(plan.questions),
        },
        summary=summary,
        style_floor=compute_style_floor(plan.dataset.author_train_answers, test_answers),
        voice=voice,
        generations=generations,
        judge=judge,
        retrieval=retrieval,
        skipped=skipped,
        promotion=promotion,
        training=training_curves(twin),
        config=plan.config.model_dump(mode="json"),
        timings_s=timings or {},
        notes=notes,
    )


def merge_ragas_rows(generations: list[GenerationResult], judge: JudgePhase) -> None:
    """Put the judge phase's per-answer Ragas scores back on the RAG answers they belong to (by id)."""
    by_model = {r.model: {row["id"]: row for row in r.ragas_rows} for r in judge.results}
    for generation in generations:
        rows = by_model.get(generation.model, {})
        for answer in generation.rag_answers:
            row = rows.get(answer.id)
            if row:
                answer.metrics.update({k: v for k, v in row.items() if k != "id"})


def publish(settings: Settings, report: EvaluationReport) -> dict[str, Any]:
    """Write report.json / report.html / PNGs, then Comet, Opik and ZenML model-version metadata."""
    from llm_engineering.model.evaluation.tracking import log_model_version_metadata, log_to_comet, log_to_opik

    paths = write_report(report)
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
    report = build_report(plan, voice, generations, judge, retrieval, promotion, timings)
    published = publish(settings, report)
    return report, published
