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

from llm_engineering.application.datasets.reader import TrainingData
from llm_engineering.infrastructure.ml.training.backends import BackendPlan
from llm_engineering.infrastructure.ml.training.common import (
    StageResult,
    finish_stage,
    log_history_of,
    prepare_stage,
    quiet_known_warnings,
    resume_point,
    reuse_finished_stage,
    session_metrics,
)
from llm_engineering.infrastructure.ml.training.config import TrainingConfig
from llm_engineering.infrastructure.tracking.training import CometTracker, NullTracker

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

    rows = (data.dpo_train, data.dpo_test)
    prepared = prepare_stage("dpo", DPOConfig, config, plan, sft_model, rows, stage_dir, tracker.report_to, run_name)
    args = DPOConfig(
        **prepared.trainer_kwargs,
        beta=config.dpo.beta,
        loss_type=[config.dpo.loss_type],
        precompute_ref_log_probs=config.dpo.precompute_ref_log_probs,
    )
    with tracker.stage("dpo"):
        trainer = DPOTrainer(
            model=prepared.model,
            ref_model=None,
            args=args,
            train_dataset=prepared.train_dataset,
            eval_dataset=prepared.eval_dataset,
            processing_class=prepared.tokenizer,
            peft_config=prepared.peft_config,
        )
        resume, steps_before = resume_point(prepared.checkpoints, "dpo")
        train_started = time.monotonic()
        output = trainer.train(resume_from_checkpoint=resume)
        metrics: dict[str, Any] = session_metrics(trainer, output, train_started, steps_before)
        history = log_history_of(trainer)
        for key in REWARD_KEYS:
            metrics[f"train_{key.replace('/', '_')}"] = last_logged(history, key)
        if prepared.eval_dataset is not None:
            evaluation = trainer.evaluate()
            metrics["eval_loss"] = evaluation.get("eval_loss")
            for key in REWARD_KEYS:
                metrics[f"eval_{key.replace('/', '_')}"] = evaluation.get(f"eval_{key}")
        result = finish_stage("dpo", trainer, prepared, stage_dir, sft_model, metrics, resume)
    del trainer, prepared
    logger.info(
        f"DPO done: {metrics['global_step']} steps, loss {metrics.get('first_logged_loss')} -> "
        f"{metrics.get('last_logged_loss')}, test reward accuracy {metrics.get('eval_rewards_accuracies')}"
    )
    return result
