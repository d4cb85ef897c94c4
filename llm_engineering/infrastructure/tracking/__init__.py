"""Experiment tracking adapters: Comet (training runs, evaluation reports), Opik and ZenML model-version metadata."""
