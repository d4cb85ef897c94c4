"""ZenML steps: thin adapters over llm_engineering."""
