"""The embedding_training pipeline: adapt the embedder to the author's corpus and register it (embedder:vN)."""

from typing import Any

from zenml import Model, pipeline

from steps.embedding_training import adapt_embedder

EMBEDDER_MODEL = Model(
    name="embedder",
    license="apache-2.0",
    description="The author's embedding model: the base sentence-transformer fine-tuned on the twin's generated "
    "(question -> passage) pairs with hard negatives mined from the index.",
    use_cases="Dense retrieval over the author's corpus (EMBEDDING_MODEL_ID=embedder[:vN]).",
    tags=["llm-twin", "embedder", "sentence-transformers"],
)


@pipeline(model=EMBEDDER_MODEL)
def embedding_training(config: dict[str, Any], dataset_dir: str | None = None) -> None:
    """Dataset -> (question, passage, hard negatives) -> fine-tune -> gate on the test split -> registry."""
    adapt_embedder(config, dataset_dir)
