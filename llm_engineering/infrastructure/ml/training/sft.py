"""Supervised fine-tuning: TRL's SFTTrainer + a PEFT LoRA adapter on the instruct train split.

Samples go to TRL in the conversational prompt/completion form (`prompt` = system + user turns, `completion` =
the assistant's answer), so TRL masks the prompt tokens: the loss is on the answer (and its `<|im_end|>`)
only. The tokenizer's chat template is the twin's (TWIN_CHAT_TEMPLATE) and is saved with the adapter, so the
model is trained on exactly the text vLLM renders at serving time; `check_template_identity` proves it on a
real sample before any step is taken.
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
    perplexity,
    prepare_stage,
    prompt_ids,
    quiet_known_warnings,
    resume_point,
    reuse_finished_stage,
    session_metrics,
)
from llm_engineering.infrastructure.ml.training.config import TrainingConfig
from llm_engineering.infrastructure.tracking.training import CometTracker, NullTracker


def check_template_identity(
    trainer: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int | None = None
) -> dict[str, Any]:
    """The first prepared training sample must be: the serving-time prompt rendering
    (`apply_chat_template(prompt, add_generation_prompt=True)`) with its labels masked, then the answer tokens
    ending with the end-of-turn token (unless `max_length` cut it), all trained. Raises RuntimeError otherwise.

    TRL drops a sample whose prompt alone fills `max_length` (no answer token left to learn), so the first
    prepared sample is the first of `examples` whose prompt fits; the rows before it were dropped."""
    index, serving = 0, prompt_ids(tokenizer, examples[0]["prompt"])
    while max_length is not None and len(serving) >= max_length and index + 1 < len(examples):
        index += 1
        serving = prompt_ids(tokenizer, examples[index]["prompt"])
    prepared = trainer.train_dataset[0]
    input_ids, labels = list(prepared["input_ids"]), list(prepared["labels"])
    n = len(serving)
    problems = []
    if input_ids[:n] != serving:
        problems.append(f"the training prompt of sample {index + 1} differs from the serving-time rendering")
    if any(label != -100 for label in labels[:n]):
        problems.append("prompt tokens are not masked")
    if any(label == -100 for label in labels[n:]):
        problems.append("some answer tokens are masked")
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    truncated = max_length is not None and len(input_ids) >= max_length
    if end_id not in input_ids[n:] and not truncated:
        problems.append("the answer does not end with <|im_end|> (the model would never learn to stop)")
    if problems:
        raise RuntimeError("template identity check failed: " + "; ".join(problems))
    return {"sample": index + 1, "prompt_tokens": n, "answer_tokens": len(input_ids) - n}


def run_sft(
    config: TrainingConfig,
    data: TrainingData,
    *,
    base_model: str,
    stage_dir: Path,
    plan: BackendPlan,
    tracker: CometTracker | NullTracker | None = None,
    run_name: str = "llm-twin-sft",
) -> StageResult:
    """Train the SFT LoRA adapter into `stage_dir/adapter`; resume from `stage_dir/checkpoints` if a previous
    run of the same config and data was interrupted; reuse the result if that run had finished this stage."""
    stage_dir = Path(stage_dir)
    previous = reuse_finished_stage(stage_dir, "sft")
    if previous is not None:
        return previous
    tracker = tracker or NullTracker()
    quiet_known_warnings()  # before trl/transformers import comet_ml
    from trl import SFTConfig, SFTTrainer

    rows = (data.sft_train, data.sft_test)
    prepared = prepare_stage("sft", SFTConfig, config, plan, base_model, rows, stage_dir, tracker.report_to, run_name)
    args = SFTConfig(
        **prepared.trainer_kwargs,
        packing=False,
        completion_only_loss=True,
    )
    with tracker.stage("sft"):
        trainer = SFTTrainer(
            model=prepared.model,
            args=args,
            train_dataset=prepared.train_dataset,
            eval_dataset=prepared.eval_dataset,
            processing_class=prepared.tokenizer,
            peft_config=prepared.peft_config,
        )
        template = check_template_identity(trainer, prepared.tokenizer, data.sft_train, config.sft.max_length)
        metrics: dict[str, Any] = {"template_identity": True, **{f"sample0_{k}": v for k, v in template.items()}}
        lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
        metrics["train_samples"] = len(lengths)
        # a prompt that alone fills max_length leaves nothing to learn: TRL drops the sample
        metrics["dropped_samples"] = len(data.sft_train) - len(lengths)
        if metrics["dropped_samples"]:
            logger.warning(
                f"{metrics['dropped_samples']} of {len(data.sft_train)} SFT samples have a prompt of at least "
                f"sft.max_length={config.sft.max_length} tokens (long retrieved context): TRL drops them"
            )
        metrics["truncated_samples"] = sum(length >= config.sft.max_length for length in lengths)
        if metrics["truncated_samples"]:
            logger.warning(
                f"{metrics['truncated_samples']} of {len(lengths)} SFT samples are longer than sft.max_length="
                f"{config.sft.max_length}: their answers are cut (no end-of-turn token learnt from them)"
            )
        resume, steps_before = resume_point(prepared.checkpoints, "sft")
        if prepared.eval_dataset is not None:
            # LoRA starts at zero (a resumed run loads its checkpoint only in train()): this is the base model's
            # loss on the test answers. Run on resume too, so a resumed run takes the same (seeded) path.
            before = trainer.evaluate()
            metrics["eval_loss_before"] = before.get("eval_loss")
            metrics["eval_perplexity_before"] = perplexity(before.get("eval_loss"))
        train_started = time.monotonic()
        output = trainer.train(resume_from_checkpoint=resume)
        metrics.update(session_metrics(trainer, output, train_started, steps_before))
        if prepared.eval_dataset is not None:
            after = trainer.evaluate()
            metrics["eval_loss"] = after.get("eval_loss")
            metrics["eval_perplexity"] = perplexity(after.get("eval_loss"))
            metrics["eval_mean_token_accuracy"] = after.get("eval_mean_token_accuracy")
        result = finish_stage("sft", trainer, prepared, stage_dir, base_model, metrics, resume)
    del trainer, prepared
    logger.info(
        f"SFT done: {metrics['global_step']} steps, loss {metrics.get('first_logged_loss')} -> "
        f"{metrics.get('last_logged_loss')}, eval loss {metrics.get('eval_loss_before')} -> {metrics.get('eval_loss')}"
    )
    return result
