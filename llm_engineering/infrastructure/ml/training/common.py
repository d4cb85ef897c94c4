"""What the SFT and DPO stages share: results, trainer arguments, resume points, metrics."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, Field

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.prompts import TWIN_CHAT_TEMPLATE
from llm_engineering.infrastructure.ml.training.backends import BackendPlan, load_base_model
from llm_engineering.infrastructure.ml.training.config import StageSection

RESULT_NAME = "result.json"
CHECKPOINTS_DIRNAME = "checkpoints"
ADAPTER_DIRNAME = "adapter"
MERGED_DIRNAME = "merged"


class StageResult(BaseModel):
    """One finished stage (SFT or DPO) of a run: where its outputs are and what it measured."""

    stage: str
    base_model: str = Field(description="the checkpoint the adapter was trained on")
    adapter_dir: str
    merged_dir: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    log_history: list[dict[str, Any]] = Field(default_factory=list)
    resumed_from: str | None = Field(default=None, description="checkpoint the training resumed from, if any")
    reused: bool = Field(default=False, description="True when a previous run had already finished this stage")


def stage_result_path(stage_dir: Path) -> Path:
    return Path(stage_dir) / RESULT_NAME


def load_stage_result(stage_dir: Path) -> StageResult | None:
    """The stage's saved result if it finished before (and its outputs are still there)."""
    path = stage_result_path(stage_dir)
    if not path.is_file():
        return None
    result = StageResult.model_validate_json(path.read_text(encoding="utf-8"))
    if not (Path(result.adapter_dir) / "adapter_config.json").is_file():
        return None
    if result.merged_dir and not (Path(result.merged_dir) / "config.json").is_file():
        result.merged_dir = None
    return result


def save_stage_result(stage_dir: Path, result: StageResult) -> None:
    path = stage_result_path(stage_dir)
    temp = path.with_suffix(".tmp")
    temp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    os.replace(temp, path)


def last_checkpoint(checkpoints_dir: Path) -> str | None:
    """The newest complete `checkpoint-N` folder (a killed save leaves an incomplete one: skipped)."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return None
    candidates = []
    for path in checkpoints_dir.iterdir():
        step = path.name.removeprefix("checkpoint-")
        complete = (path / "trainer_state.json").is_file() and (path / "adapter_model.safetensors").is_file()
        if path.name.startswith("checkpoint-") and step.isdigit() and complete:
            candidates.append((int(step), path))
    return str(max(candidates)[1]) if candidates else None


def reuse_finished_stage(stage_dir: Path, stage: str) -> StageResult | None:
    """The stage's result when this run finished it before (a re-run of the same run key trains nothing)."""
    previous = load_stage_result(stage_dir)
    if previous is None:
        return None
    logger.info(f"{stage.upper()} already finished for this run ({previous.adapter_dir}): reusing it")
    return previous.model_copy(update={"reused": True})


def resume_point(checkpoints_dir: Path, stage: str) -> tuple[str | None, int]:
    """(the checkpoint an interrupted run resumes from or None, the steps it had done)."""
    resume = last_checkpoint(checkpoints_dir)
    if resume is None:
        return None, 0
    steps_before = json.loads((Path(resume) / "trainer_state.json").read_text())["global_step"]
    logger.info(f"{stage.upper()} resumes from {resume} (step {steps_before})")
    return resume, steps_before


def finish_stage(
    stage: str,
    trainer: Any,
    prepared: StageInputs,
    stage_dir: Path,
    base_model: str,
    metrics: dict[str, Any],
    resumed_from: str | None,
) -> StageResult:
    """Save the LoRA adapter with its tokenizer (chat template included) into `stage_dir/adapter`, time the
    stage, and record its result (what a re-run of the same run key reuses)."""
    adapter_dir = Path(stage_dir) / ADAPTER_DIRNAME
    trainer.save_model(str(adapter_dir))
    prepared.tokenizer.save_pretrained(str(adapter_dir))
    metrics["wall_s"] = round(time.monotonic() - prepared.started, 2)
    result = StageResult(
        stage=stage,
        base_model=base_model,
        adapter_dir=str(adapter_dir),
        metrics=metrics,
        log_history=log_history_of(trainer),
        resumed_from=resumed_from,
    )
    save_stage_result(stage_dir, result)
    return result


def load_twin_tokenizer(model_path: str):
    """The base tokenizer with the twin's chat template (and a pad token)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.chat_template = TWIN_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def to_dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows)


@dataclass
class StageInputs:
    """What a stage (SFT or DPO) builds before its TRL trainer."""

    started: float
    tokenizer: Any
    model: Any
    peft_config: Any
    train_dataset: Any
    eval_dataset: Any
    checkpoints: Path
    trainer_kwargs: dict[str, Any]


def prepare_stage(
    stage: str,
    args_class: type,
    config: Any,
    plan: BackendPlan,
    model_path: str,
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    stage_dir: Path,
    report_to: str,
    run_name: str,
) -> StageInputs:
    """Check the section's extra args and the prompts' lengths, load tokenizer and model (+ LoRA config), build
    the train/test datasets (`rows`) and the TrainingArguments fields both TRL configs take."""
    section = getattr(config, stage)
    check_extra_args(args_class, section.extra_args, stage)
    started = time.monotonic()
    train_rows, test_rows = rows
    tokenizer = load_twin_tokenizer(model_path)
    check_prompts_fit(tokenizer, train_rows, section.max_length, stage)
    model, peft_config = load_base_model(plan, model_path, config, section.max_length)
    checkpoints = Path(stage_dir) / CHECKPOINTS_DIRNAME
    return StageInputs(
        started=started,
        tokenizer=tokenizer,
        model=model,
        peft_config=peft_config,
        train_dataset=to_dataset(train_rows),
        eval_dataset=to_dataset(test_rows) if section.eval and test_rows else None,
        checkpoints=checkpoints,
        trainer_kwargs=trainer_kwargs(
            section, plan, output_dir=checkpoints, seed=config.seed, report_to=report_to, run_name=run_name
        ),
    )


def check_extra_args(args_class: type, extra: dict[str, Any], section: str) -> None:
    import dataclasses

    known = {f.name for f in dataclasses.fields(args_class)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ConfigurationError(f"{section}.extra_args: unknown {args_class.__name__} field(s): {', '.join(unknown)}")


def trainer_kwargs(
    stage: StageSection, plan: BackendPlan, *, output_dir: Path, seed: int, report_to: str, run_name: str
) -> dict[str, Any]:
    """The TrainingArguments fields both TRL configs take, from the YAML section and the backend."""
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": stage.epochs,
        "max_steps": stage.max_steps,
        "per_device_train_batch_size": stage.batch_size,
        "per_device_eval_batch_size": stage.batch_size,
        "gradient_accumulation_steps": stage.grad_accumulation,
        "learning_rate": stage.learning_rate,
        "lr_scheduler_type": stage.lr_scheduler,
        "warmup_steps": stage.warmup_ratio,
        "weight_decay": stage.weight_decay,
        "max_grad_norm": stage.max_grad_norm,
        "logging_steps": stage.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": stage.save_steps,
        "save_total_limit": stage.save_total_limit,
        "eval_strategy": "no",
        "seed": seed,
        "data_seed": seed,
        "report_to": report_to,
        "run_name": run_name,
        "max_length": stage.max_length,
        "include_num_input_tokens_seen": "non_padding",
        "dataloader_num_workers": 0,
        "remove_unused_columns": True,
        "disable_tqdm": False,
        **plan.trainer_overrides(),
    }
    if getattr(stage, "group_by_length", False):
        kwargs.update(length_grouping())
    kwargs.update(stage.extra_args)
    return kwargs


def length_grouping() -> dict[str, Any]:
    """TrainingArguments for length-grouped batches (the field was renamed in transformers 5.2x)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True} if "group_by_length" in names else {}


def session_metrics(trainer: Any, train_output: Any, started: float, steps_before: int) -> dict[str, Any]:
    """Throughput of this session (a resumed run counts only the steps it ran itself)."""
    state = trainer.state
    runtime = float(train_output.metrics.get("train_runtime", time.monotonic() - started))
    steps = max(state.global_step - steps_before, 0)
    tokens_total = int(getattr(state, "num_input_tokens_seen", 0) or 0)
    tokens_session = int(getattr(trainer, "_initial_num_input_tokens_seen", 0) or 0)
    tokens = max(tokens_total - tokens_session, 0)
    losses = [e["loss"] for e in state.log_history if "loss" in e and "eval_loss" not in e]
    return {
        "global_step": state.global_step,
        "session_steps": steps,
        "train_runtime_s": round(runtime, 3),
        "s_per_step": round(runtime / steps, 4) if steps else None,
        "tokens_seen": tokens_total,
        "session_tokens": tokens,
        "tokens_per_s": round(tokens / runtime, 2) if runtime > 0 and tokens else None,
        "train_loss": train_output.metrics.get("train_loss"),
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "epoch": state.epoch,
    }


def prefixed(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{k.removeprefix('eval_')}": v for k, v in metrics.items() if isinstance(v, int | float)}


def perplexity(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    return round(math.exp(min(loss, 50.0)), 4)


def log_history_of(trainer: Any) -> list[dict[str, Any]]:
    return [dict(entry) for entry in trainer.state.log_history]


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the serving-time rendering of `messages` (chat template + generation prompt)."""
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def check_prompts_fit(tokenizer: Any, examples: list[dict[str, Any]], max_length: int, section: str) -> int:
    """How many examples keep answer tokens under `max_length`; ConfigurationError when none does (TRL would
    silently drop them all and fail with an unrelated error)."""
    lengths = [len(prompt_ids(tokenizer, e["prompt"])) for e in examples]
    fitting = sum(length < max_length for length in lengths)
    if not fitting:
        raise ConfigurationError(
            f"{section}.max_length={max_length} leaves no sample: every prompt is at least {min(lengths)} tokens; "
            f"raise {section}.max_length"
        )
    return fitting


def quiet_known_warnings() -> None:
    """Library-internal deprecation noise repeated at every model load (peft/TRL still call the old names)."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)
    from llm_engineering.infrastructure.tracking.training import no_comet_error_reports, quiet_missing_key_warning

    no_comet_error_reports()  # transformers imports comet_ml as soon as a trainer looks for integrations
    quiet_missing_key_warning()


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
        logger.info(f"torch threads: {threads}")
