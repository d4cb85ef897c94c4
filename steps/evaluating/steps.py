"""Thin ZenML steps of the `evaluating` pipeline; the logic is in llm_engineering.application.evaluation (metrics,
report) and llm_engineering.model.evaluation (models, serving, promotion, trackers).

Each step returns a small pydantic artifact (plans, metrics, per-question rows); checkpoints stay on disk.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from zenml import log_metadata, step

from llm_engineering.application.evaluation.report import EvaluationReport
from llm_engineering.application.evaluation.results import (
    GenerationResult,
    JudgePhase,
    PromotionDecision,
    VoiceResult,
)
from llm_engineering.application.evaluation.service import EvaluationPlan


def _service(plan: EvaluationPlan):
    from llm_engineering.wiring import get_container

    return get_container().evaluation(plan.config)


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items() if isinstance(v, int | float) and v is not None}


@step(enable_cache=False)
def prepare_evaluation(
    config: dict[str, Any],
    models: list[str] | None = None,
    dataset: str | None = None,
    qa: str | None = None,
    output: str | None = None,
) -> Annotated[EvaluationPlan, "evaluation_plan"]:
    from llm_engineering.application.evaluation.config import parse_evaluation_config
    from llm_engineering.settings import get_settings
    from llm_engineering.wiring.evaluation import prepare_plan

    plan = prepare_plan(get_settings(), parse_evaluation_config(config), models, dataset, qa, output)
    log_metadata(
        metadata={
            "evaluation_version": plan.version,
            "models": {m.name: m.path for m in plan.models},
            "dataset_version": plan.dataset.version,
            "dataset_counts": plan.dataset.counts,
            "qa": plan.qa_path,
            "questions_answered": len(plan.questions),
            "output_dir": plan.output_dir,
        }
    )
    return plan


@step(enable_cache=False)
def score_voice(plan: EvaluationPlan) -> Annotated[list[VoiceResult], "voice_results"]:
    results = _service(plan).score_voice(plan)
    log_metadata(metadata={f"voice_{r.model}": _numbers(r.metrics) for r in results})
    return results


@step(enable_cache=False)
def generate_answers(plan: EvaluationPlan) -> Annotated[list[GenerationResult], "generations"]:
    results = _service(plan).generate(plan)
    log_metadata(metadata={f"generation_{r.model}": _numbers(r.metrics) for r in results})
    return results


@step(enable_cache=False)
def judge_answers(plan: EvaluationPlan, generations: list[GenerationResult]) -> Annotated[JudgePhase, "judge"]:
    phase = _service(plan).judge(plan, generations)
    log_metadata(
        metadata={
            "judge_status": phase.status,
            "judge_reason": phase.reason,
            "judge_model": phase.model,
            **{f"judge_{r.model}": _numbers(r.metrics) for r in phase.results},
        }
    )
    return phase


@step(enable_cache=False)
def evaluate_retrieval_metrics(plan: EvaluationPlan) -> Annotated[dict[str, Any], "retrieval"]:
    result = _service(plan).retrieval(plan)
    if result.get("overall"):
        log_metadata(metadata={"retrieval": {m: _numbers(v) for m, v in result["overall"].items()}})
    return result


@step(enable_cache=False)
def promote_twin(
    plan: EvaluationPlan, voice: list[VoiceResult], generations: list[GenerationResult], judge: JudgePhase
) -> Annotated[PromotionDecision, "promotion"]:
    from llm_engineering.application.evaluation.report import build_summary
    from llm_engineering.settings import get_settings
    from llm_engineering.wiring.evaluation import promotion_for

    summary = build_summary([m.name for m in plan.models], voice, generations, judge)
    decision = promotion_for(get_settings(), plan, summary)
    log_metadata(metadata={"promotion": decision.model_dump(mode="json", exclude={"zenml"})})
    return decision


@step(enable_cache=False)
def write_evaluation_report(
    plan: EvaluationPlan,
    voice: list[VoiceResult],
    generations: list[GenerationResult],
    judge: JudgePhase,
    retrieval: dict[str, Any],
    promotion: PromotionDecision,
) -> Annotated[EvaluationReport, "evaluation_report"]:
    from llm_engineering.application.evaluation.report import build_report
    from llm_engineering.infrastructure.tracking.evaluation import zenml_metadata
    from llm_engineering.settings import get_settings
    from llm_engineering.wiring.evaluation import candidate_training, publish

    started = time.monotonic()
    report = build_report(plan, voice, generations, judge, retrieval, promotion, training=candidate_training(plan))
    published = publish(get_settings(), report)
    report.timings_s["report"] = round(time.monotonic() - started, 2)
    log_metadata(metadata={**zenml_metadata(report), "report_paths": published["paths"]})
    return report
