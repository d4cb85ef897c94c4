"""The evaluation report's model (every number, per model and per question), its summary table and the number
formatting shared by the text table, the plots (`report_plots.py`) and the HTML page (`report_html.py`).

Plots use matplotlib with the Agg backend (no display). Without matplotlib the report is written without plots,
and says so.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from llm_engineering.application.evaluation.answer_quality import ANSWER_KEYS, side_by_side
from llm_engineering.application.evaluation.results import (
    GenerationResult,
    JudgePhase,
    PromotionDecision,
    Skipped,
    VoiceResult,
    finite,
    metric_info,
)

if TYPE_CHECKING:
    from llm_engineering.application.evaluation.service import EvaluationPlan


# Metrics in the summary table and the bar chart, in this order (others are in report.json).
HEADLINE = (
    "voice.perplexity",
    "voice.dpo_reward_accuracy",
    "voice.preference_accuracy",
    "style.distance",
    "style.function_word_jsd",
    "judge.accuracy",
    "judge.style",
    "judge.win_rate_vs_author",
    "judge.agreement",
    *ANSWER_KEYS,
    "rag.faithfulness",
    "rag.answer_relevancy",
    "rag.context_precision",
    "rag.context_recall",
    "rag.nonllm_context_precision",
    "rag.nonllm_context_recall",
    "rag.string_similarity",
    "rag.rouge_l",
    "rag.cited_answer_rate",
    "rag.citation_valid_rate",
    "rag.citation_supported_rate",
    "speed.latency_p50_s",
    "speed.tokens_per_s",
)


class EvaluationReport(BaseModel):
    version: str
    created_at: str
    output_dir: str
    models: list[dict[str, Any]]
    dataset: dict[str, Any]
    qa: dict[str, Any]
    summary: dict[str, dict[str, float | None]] = Field(description="model -> metric -> value")
    style_floor: dict[str, float | None] = Field(default_factory=dict, description="author's train vs test answers")
    voice: list[VoiceResult] = Field(default_factory=list)
    generations: list[GenerationResult] = Field(default_factory=list)
    answers: list[dict[str, Any]] = Field(
        default_factory=list, description="per RAG question: the reference and every model's answer, side by side"
    )
    judge: JudgePhase = Field(default_factory=JudgePhase)
    retrieval: dict[str, Any] = Field(default_factory=dict)
    skipped: list[Skipped] = Field(default_factory=list)
    promotion: PromotionDecision | None = None
    training: dict[str, Any] = Field(default_factory=dict, description="loss curves of the twin's training run")
    config: dict[str, Any] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    plots: dict[str, str] = Field(default_factory=dict, description="plot name -> PNG file name")

    def headline(self) -> list[str]:
        present = {k for values in self.summary.values() for k, v in values.items() if v is not None}
        return [k for k in HEADLINE if k in present]

    def table_rows(self) -> list[tuple[str, list[float | None]]]:
        names = list(self.summary)
        return [(key, [self.summary[n].get(key) for n in names]) for key in self.headline()]


def build_summary(
    model_names: list[str], voice: list[VoiceResult], generations: list[GenerationResult], judge: JudgePhase
) -> dict[str, dict[str, float | None]]:
    summary: dict[str, dict[str, float | None]] = {name: {} for name in model_names}
    for result in [*voice, *generations, *judge.results]:
        target = summary.setdefault(result.model, {})
        target.update({k: finite(v) for k, v in result.metrics.items()})
    return summary


def compute_style_floor(train_answers: list[str], test_answers: list[str]) -> dict[str, float | None]:
    """The author against themself (train vs test answers): the distance a perfect twin could reach."""
    from llm_engineering.application.evaluation.voice import style_metrics

    if not train_answers:
        return {}
    return style_metrics(train_answers, test_answers)


# --- formatting -------------------------------------------------------------------------------------------------


def fmt(value: float | None, key: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if key.endswith("perplexity") or abs(value) >= 100:
        return f"{value:.2f}"
    return f"{value:.3f}"


def best_index(key: str, values: list[float | None]) -> int | None:
    numbers = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(numbers) < 2:
        return None
    pick = max if metric_info(key).higher_is_better else min
    value, index = pick(numbers)
    return None if all(v == value for v, _ in numbers) else index  # a tie has no best


def text_table(report: EvaluationReport, keys: list[str] | None = None, models: list[str] | None = None) -> str:
    """The summary table as plain text (for the CLI and README); `keys` / `models` pick rows / columns."""
    names = [n for n in report.summary if models is None or n in models]
    rows = [(k, [report.summary[n].get(k) for n in names]) for k in (keys or report.headline())]
    width = max([len(metric_info(k).label) for k, _ in rows] + [10])
    lines = [f"  {'metric':<{width}}  " + "".join(f"{n:>12}" for n in names) + "  better"]
    for key, values in rows:
        info = metric_info(key)
        arrow = "higher" if info.higher_is_better else "lower"
        lines.append(f"  {info.label:<{width}}  " + "".join(f"{fmt(v, key):>12}" for v in values) + f"  {arrow}")
    return "\n".join(lines)


# --- plots -------------------------------------------------------------------------------------------------------


# --- HTML ----------------------------------------------------------------------------------------------------------


def build_report(
    plan: EvaluationPlan,
    voice: list[VoiceResult],
    generations: list[GenerationResult],
    judge: JudgePhase,
    retrieval: dict[str, Any],
    promotion: PromotionDecision | None,
    timings: dict[str, float] | None = None,
    training: dict[str, Any] | None = None,
) -> EvaluationReport:
    """The report from every phase's results; `training` holds the candidate's loss curves (from the registry)."""
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
        from llm_engineering.application.evaluation.ragas_adapters import ragas_available

        available, detail = ragas_available()
        implementation = {g.metrics.get("rag.nonllm_implementation_ragas") for g in generations if g.rag_answers}
        if not available or implementation != {1.0}:
            notes.append(
                "non-LLM RAG metrics computed by the built-in implementations (same definitions), not Ragas"
                + (f": Ragas cannot be imported ({detail})" if not available else "")
            )
    with_reference = sum(1 for q in plan.qa if q.answer)
    if len(plan.questions) < with_reference:
        notes.append(
            f"{len(plan.questions)} of the {with_reference} QA questions with a reference answer were answered by each "
            f"model (rag.kinds: {plan.config.rag.kinds or 'all'}, rag.max_questions: {plan.config.rag.max_questions})"
        )
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
            "with_reference": with_reference,
            "answered": len(plan.questions),
            "kinds": plan.config.rag.kinds or "all",
        },
        summary=summary,
        style_floor=compute_style_floor(plan.dataset.author_train_answers, test_answers),
        voice=voice,
        generations=generations,
        answers=side_by_side(generations),
        judge=judge,
        retrieval=retrieval,
        skipped=skipped,
        promotion=promotion,
        training=training or {},
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
