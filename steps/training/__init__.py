from .steps import prepare_training_run, register_twin, train_dpo, train_sft

__all__ = ["prepare_training_run", "register_twin", "train_dpo", "train_sft"]
