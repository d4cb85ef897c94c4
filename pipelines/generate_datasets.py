from typing import Any

from zenml import pipeline

from steps.datasets import build_extracts, generate_samples, load_cleaned_documents, write_datasets


@pipeline
def generate_datasets(
    config: dict[str, Any],
    authors: list[str] | None = None,
    output: str | None = None,
    max_extracts: int | None = None,
) -> None:
    """Cleaned documents → extracts → instructions (back-translated) + filters → preference pairs → split → files."""
    source = load_cleaned_documents(config, authors)
    extracts = build_extracts(config, source, max_extracts)
    generation = generate_samples(config, extracts)
    write_datasets(config, source, extracts, generation, output)
