"""A training run's data: what its stages need (`TrainingRun`, small and JSON-able between ZenML steps) and what
it produced (`TrainingReport`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llm_engineering.application.datasets.reader import (
    DatasetInfo,
)
from llm_engineering.infrastructure.ml.training.backends import BackendPlan
from llm_engineering.infrastructure.ml.training.common import (
    StageResult,
)
from llm_engineering.infrastructure.ml.training.config import TrainingConfig
from llm_engineering.infrastructure.registry import RegisteredVersion


class TrainingRun(BaseModel):
    """Everything the stages of one run need (small and JSON-able: it travels between ZenML steps)."""

    config: TrainingConfig
    dataset: DatasetInfo
    data_dir: str
    models_dir: str
    base_model: str = Field(description="the resolved base checkpoint (dir or hub id)")
    plan: BackendPlan
    run_key: str
    run_dir: str
    comet_project: str

    @property
    def name(self) -> str:
        return self.config.output.name

    def stage_dir(self, stage: str) -> Path:
        return Path(self.run_dir) / stage


class TrainingReport(BaseModel):
    """What a run produced and measured; returned by `train_twin` and by the pipeline's last step."""

    model_name: str
    run_key: str
    run_dir: str
    dataset: DatasetInfo
    backend: BackendPlan
    config: dict[str, Any]
    base_model: str
    sft: StageResult
    dpo: StageResult | None = None
    registered: RegisteredVersion | None = None
    model_path: str = Field(description="the twin checkpoint (the registered version dir when registered)")
    sft_model_path: str
    timings_s: dict[str, float] = Field(default_factory=dict)
    wall_s: float = 0.0
    tracking: dict[str, Any] = Field(default_factory=dict)
    zenml: dict[str, Any] | None = None
    environment: dict[str, Any] = Field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """Flat final metrics (`sft/...`, `dpo/...`) for metadata, the model card and the registry manifest."""
        flat: dict[str, Any] = {}
        for result in (self.sft, self.dpo):
            if result is None:
                continue
            for key, value in result.metrics.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    flat[f"{result.stage}/{key}"] = value
        return flat

    def summary_rows(self) -> list[tuple[str, Any]]:
        sft, dpo = self.sft.metrics, (self.dpo.metrics if self.dpo else {})
        rows: list[tuple[str, Any]] = [
            ("dataset", f"{self.dataset.version} ({self.dataset.hash[:12]}) {self.dataset.counts}"),
            ("backend", f"{self.backend.name} / {self.backend.device} / {self.backend.precision}"),
            ("SFT steps", sft.get("global_step")),
            ("SFT train loss (mean)", _r(sft.get("train_loss"))),
        ]
        if sft.get("eval_loss") is not None:  # sft.eval on (else the evaluation step measures the test split)
            loss = f"{_r(sft.get('eval_loss_before'))} -> {_r(sft['eval_loss'])}"
            rows.append(("SFT test loss before -> after", loss))
        rows.append(("SFT s/step, tokens/s", f"{_r(sft.get('s_per_step'))}, {_r(sft.get('tokens_per_s'))}"))
        if self.dpo:
            rows += [
                ("DPO steps", dpo.get("global_step")),
                ("DPO loss first -> last", f"{_r(dpo.get('first_logged_loss'))} -> {_r(dpo.get('last_logged_loss'))}"),
                ("DPO train reward accuracy (last)", _r(dpo.get("train_rewards_accuracies"))),
            ]
            if dpo.get("eval_rewards_accuracies") is not None:  # dpo.eval on
                rows += [
                    ("DPO test reward accuracy", _r(dpo.get("eval_rewards_accuracies"))),
                    ("DPO test reward margin", _r(dpo.get("eval_rewards_margins"))),
                ]
            rows.append(("DPO s/step, tokens/s", f"{_r(dpo.get('s_per_step'))}, {_r(dpo.get('tokens_per_s'))}"))
        rows += [
            ("registered", f"{self.registered.name}:{self.registered.version}" if self.registered else "no"),
            ("twin checkpoint", self.model_path),
            ("SFT checkpoint", self.sft_model_path),
            ("tracking", self.tracking.get("archive") or self.tracking.get("url") or self.tracking.get("mode")),
            ("wall time", f"{self.wall_s:.0f} s"),
        ]
        return rows


def _r(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
