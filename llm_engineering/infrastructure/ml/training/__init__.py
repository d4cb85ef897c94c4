"""Fine-tuning adapters: TRL's SFT and DPO trainers with LoRA (CPU) or QLoRA/unsloth (CUDA), merge, typed config.

Import from the modules (importing this package loads no model library): `config.load_training_config(path)`;
`sft.run_sft` / `dpo.run_dpo` (one stage each); `merge.merge_adapter`. The run that sequences them (SFT -> merge ->
DPO -> merge -> register) is `llm_engineering.wiring.training.train_twin`; the registry is
`llm_engineering.infrastructure.registry`.
"""
