from steps.refresh.steps import (
    detect_new_writing,
    plan_continued_training,
    record_refresh,
    serve_production,
    start_dataset_llm,
    stop_dataset_llm,
)

__all__ = [
    "detect_new_writing",
    "plan_continued_training",
    "record_refresh",
    "serve_production",
    "start_dataset_llm",
    "stop_dataset_llm",
]
