"""Training backends, picked by config (`backend: auto|cpu|qlora|unsloth`) and by the hardware.

- `cpu`: plain LoRA with TRL on the CPU. `precision: auto` is bf16 autocast where the CPU has avx512_bf16 or
  amx_bf16 (measured on the reference 2-core EPYC: 1.14-1.5x faster than fp32, losses equal within 0.02 —
  docs/training.md), fp32 elsewhere; `precision: fp32|bf16` forces one.
  TRL's GPU defaults are switched off here: `bf16=False`, `gradient_checkpointing=False`, `use_cpu=True`
  (measured 243 s vs 36 s for 4 SFT steps with and without them).
- `qlora`: CUDA + bitsandbytes: the frozen base in 4-bit NF4 with double quantisation, bf16 compute, paged
  8-bit AdamW, gradient checkpointing; LoRA adapters trained in bf16.
- `unsloth`: CUDA + unsloth: its FastLanguageModel (4-bit) with the same TRL trainers. unsloth pins other
  transformers/TRL versions, so it lives in its own environment (requirements-unsloth.txt), never by default.

`auto` picks qlora on CUDA when bitsandbytes imports (plain LoRA in bf16 on CUDA without it), else cpu;
unsloth only when asked by name. GPU-only
packages are imported lazily, inside functions, so this module imports on any machine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.ml.training.config import TrainingConfig

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# unsloth takes explicit module names: "all-linear" for Llama-family models (SmolLM2 is one)
ALL_LINEAR_LLAMA = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class BackendPlan(BaseModel):
    """What the trainers are told: device, precision, quantisation and optimizer."""

    name: Literal["cpu", "cuda-lora", "qlora", "unsloth"]
    device: Literal["cpu", "cuda"]
    precision: Literal["fp32", "bf16"]
    load_in_4bit: bool = False
    gradient_checkpointing: bool = False
    optim: str = "adamw_torch"
    reason: str = ""

    def trainer_overrides(self) -> dict[str, Any]:
        """TrainingArguments fields that depend on the backend (TRL's defaults are GPU defaults)."""
        # transformers >= 5.2x renamed gradient_checkpointing to activation_checkpointing (old name deprecated).
        name = checkpointing_field()
        overrides: dict[str, Any] = {
            "bf16": self.precision == "bf16",
            "fp16": False,
            name: self.gradient_checkpointing,
            "use_cpu": self.device == "cpu",
            "optim": self.optim,
        }
        if self.gradient_checkpointing:
            overrides[f"{name}_kwargs"] = {"use_reentrant": False}
        return overrides


def checkpointing_field() -> str:
    """`activation_checkpointing` where this transformers has it, else `gradient_checkpointing`."""
    try:
        import dataclasses

        from transformers import TrainingArguments
    except ImportError:  # pragma: no cover - transformers is part of the `train` extra
        return "gradient_checkpointing"
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_bf16() -> bool:
    return bool(cpu_flags() & set(BF16_CPU_FLAGS))


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def select_backend(
    config: TrainingConfig,
    *,
    has_cuda: bool | None = None,
    importable: dict[str, bool] | None = None,
    cpu_bf16: bool | None = None,
) -> BackendPlan:
    """Choose the backend for `config` on this machine. `has_cuda`/`importable`/`cpu_bf16` let tests state the
    hardware."""
    if has_cuda is None:
        has_cuda = cuda_available()
    if cpu_bf16 is None:
        cpu_bf16 = cpu_has_bf16()
    found = importable or {}

    def can_import(name: str) -> bool:
        return found[name] if name in found else _importable(name)

    wanted = config.backend
    if wanted in ("qlora", "unsloth") and not has_cuda:
        raise ConfigurationError(
            f"backend: {wanted} needs a CUDA GPU and none is visible; use `backend: cpu` (or `auto`) on this machine"
        )
    if wanted == "unsloth":
        if not can_import("unsloth"):
            raise ConfigurationError(
                "backend: unsloth is not installed in this environment; it pins its own torch/transformers/TRL, so "
                "install it in a separate environment: `pip install -r requirements-unsloth.txt` (see docs/training.md)"
            )
        return BackendPlan(
            name="unsloth",
            device="cuda",
            precision="bf16",
            load_in_4bit=True,
            gradient_checkpointing=True,
            optim="paged_adamw_8bit" if can_import("bitsandbytes") else "adamw_torch",
            reason="asked for unsloth; CUDA and unsloth found",
        )
    if wanted == "qlora" or (wanted == "auto" and has_cuda and can_import("bitsandbytes")):
        if not can_import("bitsandbytes"):
            raise ConfigurationError(
                "backend: qlora needs bitsandbytes: `pip install -e '.[gpu]'` (the `gpu` extra) on the CUDA machine"
            )
        return BackendPlan(
            name="qlora",
            device="cuda",
            precision="bf16",
            load_in_4bit=True,
            gradient_checkpointing=True,
            optim="paged_adamw_8bit",
            reason="CUDA and bitsandbytes found" if wanted == "auto" else "asked for qlora",
        )
    if wanted == "auto" and has_cuda:
        # CUDA without bitsandbytes: plain LoRA on the GPU in bf16.
        return BackendPlan(
            name="cuda-lora",
            device="cuda",
            precision="bf16",
            load_in_4bit=False,
            gradient_checkpointing=True,
            optim="adamw_torch",
            reason="CUDA found but bitsandbytes is not installed: LoRA in bf16 without 4-bit (pip install '.[gpu]')",
        )
    reason = "no CUDA GPU" if wanted == "auto" else "asked for cpu"
    precision: Literal["fp32", "bf16"]
    if config.precision == "auto":
        precision = "bf16" if cpu_bf16 else "fp32"
        reason += (
            "; bf16 autocast: this CPU has native bf16 (measured faster than fp32, same losses)"
            if cpu_bf16
            else "; fp32: this CPU has no native bf16 (avx512_bf16/amx_bf16)"
        )
    else:
        precision = config.precision
        if precision == "bf16" and not cpu_bf16:
            reason += "; bf16 asked but this CPU lacks avx512_bf16/amx_bf16 (emulated: expect it slower)"
    return BackendPlan(name="cpu", device="cpu", precision=precision, reason=reason)


def torch_dtype(plan: BackendPlan):
    import torch

    return torch.bfloat16 if plan.precision == "bf16" and plan.device == "cuda" else torch.float32


def load_base_model(plan: BackendPlan, model_path: str, config: TrainingConfig, max_length: int):
    """Load the model to train on `plan` (a fresh base for SFT, the merged SFT model for DPO).

    Returns `(model, peft_config_or_None)`: for unsloth the adapters are already attached (its own
    get_peft_model), so the trainer gets no peft_config; otherwise the trainer wraps the model itself.
    """
    if plan.name == "unsloth":
        import unsloth  # optional GPU backend, separate environment
        from unsloth import FastLanguageModel

        if hasattr(unsloth, "PatchDPOTrainer"):  # older unsloth needs it before a DPOTrainer is built
            unsloth.PatchDPOTrainer()
        model, _ = FastLanguageModel.from_pretrained(
            model_name=model_path, max_seq_length=max_length, load_in_4bit=True, dtype=None
        )
        target = config.lora.target_modules
        model = FastLanguageModel.get_peft_model(
            model,
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=ALL_LINEAR_LLAMA if target == "all-linear" else list(target),
            bias="none",
            use_gradient_checkpointing="unsloth",
            random_state=config.seed,
        )
        return model, None

    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype(plan)}
    if plan.load_in_4bit:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["dtype"] = torch.bfloat16
    if plan.device == "cuda":
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if plan.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=plan.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    model.config.use_cache = False
    return model, lora_config(config)


def lora_config(config: TrainingConfig):
    """A fresh PEFT LoraConfig per trainer (TRL mutates the one it gets)."""
    from peft import LoraConfig

    target = config.lora.target_modules
    return LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=target if isinstance(target, str) else list(target),
        bias="none",
        task_type="CAUSAL_LM",
    )
