"""Fine-tuning the twin: SFT then DPO with LoRA (CPU) or QLoRA/unsloth (CUDA), merge, register, track.

Entry points (import them from their modules; importing this package loads no model library):

- `config.load_training_config(path)` -> `TrainingConfig` (typed, from YAML)
- `service.train_twin(config, dataset_dir, max_steps=None)` -> `TrainingReport` (SFT -> merge -> DPO -> merge ->
  register), or the stage functions the ZenML steps call one by one
- `registry.resolve_registered_model(models_dir, "llm-twin[:version]" | "llm-twin-sft[:version]")` -> checkpoint dir
"""
