from typing import Any

from zenml import Model, pipeline

from steps.training import prepare_training_run, register_twin, train_dpo, train_sft

TWIN_MODEL = Model(
    name="llm-twin",
    license="apache-2.0",
    description="The author's LLM Twin: a base model fine-tuned (SFT, then DPO) on the author's own writing.",
    use_cases="Answer questions in the author's voice, grounded by the RAG service's retrieved context.",
    limitations="The default base is SmolLM2-135M-Instruct: fluent-looking, often wrong. Train a bigger base on a GPU.",
    tags=["llm-twin", "lora", "trl"],
)


@pipeline(model=TWIN_MODEL)
def training(config: dict[str, Any], dataset_dir: str | None = None, max_steps: int | None = None) -> None:
    """Dataset -> SFT (LoRA) -> merge -> DPO (LoRA, SFT as reference) -> merge -> registry + model version."""
    run = prepare_training_run(config, dataset_dir, max_steps)
    sft = train_sft(run)
    dpo = train_dpo(run, sft) if config.get("dpo", {}).get("enabled", True) else None
    register_twin(run, sft, dpo)
