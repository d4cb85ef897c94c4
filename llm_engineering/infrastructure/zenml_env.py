"""ZenML keeps its state inside the project's data folder (set before zenml is first imported)."""

from __future__ import annotations

import os

from llm_engineering.settings import Settings


def configure_zenml(settings: Settings) -> None:
    """Point ZenML at `data_dir/zenml` unless the user chose a config path; no analytics, offline."""
    settings.zenml_config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ZENML_CONFIG_PATH", str(settings.zenml_config_dir))
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_ENABLE_REPO_INIT_WARNINGS", "false")
    os.environ.setdefault("AUTO_OPEN_DASHBOARD", "false")
