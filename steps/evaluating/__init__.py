from .steps import (
    evaluate_retrieval_metrics,
    generate_answers,
    judge_answers,
    prepare_evaluation,
    promote_twin,
    score_voice,
    write_evaluation_report,
)

__all__ = [
    "evaluate_retrieval_metrics",
    "generate_answers",
    "judge_answers",
    "prepare_evaluation",
    "promote_twin",
    "score_voice",
    "write_evaluation_report",
]
