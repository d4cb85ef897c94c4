from typing import Any

from zenml import pipeline

from steps.evaluating import (
    evaluate_retrieval_metrics,
    generate_answers,
    judge_answers,
    prepare_evaluation,
    promote_twin,
    score_voice,
    write_evaluation_report,
)


@pipeline
def evaluating(
    config: dict[str, Any],
    models: list[str] | None = None,
    dataset: str | None = None,
    qa: str | None = None,
    output: str | None = None,
) -> None:
    """Base vs SFT vs twin: judge-free voice metrics → generations (style, RAG, citations, speed) → judge + Ragas →
    retrieval metrics → promotion → report.json / report.html / PNGs, ZenML + Comet (+ Opik) metadata."""
    plan = prepare_evaluation(config, models, dataset, qa, output)
    voice = score_voice(plan)
    generations = generate_answers(plan, after=[voice])
    judge = judge_answers(plan, generations)
    retrieval = evaluate_retrieval_metrics(plan, after=[judge])
    promotion = promote_twin(plan, voice, generations, judge)
    write_evaluation_report(plan, voice, generations, judge, retrieval, promotion)
