"""Preference tuning: TRL's DPOTrainer on the preference train split, starting from the merged SFT model.

The trainer gets the merged SFT checkpoint plus a fresh LoRA config and no `ref_model`: TRL then computes the
reference log-probabilities with the adapters disabled, i.e. with the SFT model itself — the SFT model is the
reference, at no extra memory. (An already-trained PeftModel plus a peft_config raises: that is why SFT is
merged first.) Logged every step: loss, rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies;
after training the same on the preference test split (does the twin prefer the author's text to the base
model's?).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from loguru import logger

from llm_engineering.model.training.backends import BackendPlan, load_base_model
from llm_engineering.model.training.common import (
    CHECKPOINTS_DIRNAME,
    StageResult,
    check_extra_args,
    check_prompts_fit,
    log_history_of,
    quiet_known_warnings,
    resume_point,
    reuse_finished_stage,
    save_adapter,
    save_stage_result,
    session_metrics,
    trainer_kwargs,
)
from llm_engineering.model.training.config import TrainingConfig
from llm_engineering.model.training.data import TrainingData
from llm_engineering.model.training.sft import load_twin_tokenizer, to_dataset
from llm_engineering.model.training.tracking import CometTracker, NullTracker

REWARD_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def last_logged(log_history: list[dict[str, Any]], key: str) -> float | None:
    for entry in reversed(log_history):
        if key in entry:
            return entry[key]
    return None


def run_dpo(
    config: TrainingConfig,
    data: TrainingData,
    *,
    sft_model: str,
    stage_dir: Path,
    plan: BackendPlan,
    tracker: CometTracker | NullTracker | None = None,
    run_name: str = "llm-twin-dpo",
) -> StageResult:
    """Train the DPO LoRA adapter on top of the merged SFT checkpoint `sft_model`, into `stage_dir/adapter`."""
    stage_dir = Path(stage_dir)
    previous = reuse_finished_stage(stage_dir, "dpo")
    if previous is not None:
        return previous
    tracker = tracker or NullTracker()

    quiet_known_warnings()  # before trl/transformers import comet_ml
    from trl import DPOConfig, DPOTrainer

    check_extra_args(DPOConfig, config.dpo.extra_args, "dpo")
    started = time.monotonic()
    tokenizer = load_twin_tokenizer(sft_model)
    check_prompts_fit(tokenizer, data.dpo_train, config.dpo.max_length, "dpo")
    model, peft_config = load_base_model(plan, sft_model, config, config.dpo.max_length)
    train_dataset = to_dataset(data.dpo_train)
    eval_dataset = to_dataset(data.dpo_test) if config.dpo.eval and data.dpo_test else None
    checkpoints = stage_dir / CHECKPOINTS_DIRNAME
    args = DPOConfig(
        **trainer_kwargs(
            config.dpo,
            plan,
            output_dir=checkpoints,
            seed=config.seed,
            report_to=tracker.report_to,
            run_name=run_name,
        ),
        beta=config.dpo.beta,
        loss_type=[config.dpo.loss_type],
        precompute_ref_log_probs=config.dpo.precompute_ref_log_probs,
    )
    with tracker.stage("dpo"):
        trainer = DPOTrainer(
            model=model,
            ref_model=None,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        resume, steps_before = resume_point(checkpoints, "dpo")
        train_started = time.monotonic()
        output = trainer.train(resume_from_checkpoint=resume)
        metrics: dict[str, Any] = session_metrics(trainer, output, train_started, steps_before)
        history = log_history_of(trainer)
        for key in REWARD_KEYS:
            metrics[f"train_{key.replace('/', '_')}"] = last_logged(history, key)
        if eval_dataset is not None:
            evaluation = trainer.evaluate()
            metrics["eval_loss"] = evaluation.get("eval_loss")
            for key in REWARD_KEYS:
                metrics[f"eval_{key.replace('/', '_')}"] = evaluation.get(f"eval_{key}")
        adapter_dir = save_adapter(trainer, tokenizer, stage_dir)
        metrics["wall_s"] = round(time.monotonic() - started, 2)
    result = StageResult(
        stage="dpo",
        base_model=sft_model,
        adapter_dir=str(adapter_dir),
        metrics=metrics,
        log_history=log_history_of(trainer),
        resumed_from=resume,
    )
    save_stage_result(stage_dir, result)
    del trainer, model
    logger.info(
        f"DPO done: {metrics['global_step']} steps, loss {metrics.get('first_logged_loss')} -> "
        f"{metrics.get('last_logged_loss')}, test reward accuracy {metrics.get('eval_rewards_accuracies')}"
    )
    return result
