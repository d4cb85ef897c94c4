from .steps import build_extracts, generate_samples, load_cleaned_documents, write_datasets

__all__ = ["build_extracts", "generate_samples", "load_cleaned_documents", "write_datasets"]
