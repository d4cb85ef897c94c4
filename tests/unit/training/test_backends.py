"""Backend choice by hardware and config (the hardware is stated, so this runs on any machine)."""

from __future__ import annotations

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.ml.training.backends import checkpointing_field, select_backend
from llm_engineering.infrastructure.ml.training.config import parse_training_config

GPU_PACKAGES = {"bitsandbytes": True, "unsloth": True}
NO_GPU_PACKAGES = {"bitsandbytes": False, "unsloth": False}


def plan(has_cuda: bool, importable: dict[str, bool], cpu_bf16: bool = False, **config):
    return select_backend(parse_training_config(config), has_cuda=has_cuda, importable=importable, cpu_bf16=cpu_bf16)


def test_auto_on_cpu_is_lora_fp32_without_gpu_defaults() -> None:
    chosen = plan(False, GPU_PACKAGES)
    assert (chosen.name, chosen.device, chosen.precision, chosen.load_in_4bit) == ("cpu", "cpu", "fp32", False)
    overrides = chosen.trainer_overrides()
    assert overrides["bf16"] is False and overrides[checkpointing_field()] is False
    assert overrides["use_cpu"] is True and overrides["optim"] == "adamw_torch"


def test_bf16_on_cpu_when_the_cpu_has_it_or_when_asked() -> None:
    native = plan(False, NO_GPU_PACKAGES, cpu_bf16=True)
    assert native.precision == "bf16" and native.trainer_overrides()["bf16"] is True
    assert native.trainer_overrides()[checkpointing_field()] is False  # still no GPU defaults
    assert plan(False, NO_GPU_PACKAGES, cpu_bf16=True, precision="fp32").precision == "fp32"
    asked = plan(False, NO_GPU_PACKAGES, cpu_bf16=False, precision="bf16")
    assert asked.precision == "bf16" and "emulated" in asked.reason
    assert plan(False, NO_GPU_PACKAGES, backend="cpu").precision == "fp32"


def test_auto_on_cuda_with_bitsandbytes_is_qlora() -> None:
    chosen = plan(True, GPU_PACKAGES)
    assert (chosen.name, chosen.device, chosen.precision, chosen.load_in_4bit) == ("qlora", "cuda", "bf16", True)
    overrides = chosen.trainer_overrides()
    assert overrides["optim"] == "paged_adamw_8bit" and overrides[checkpointing_field()] is True
    assert overrides["use_cpu"] is False and overrides["bf16"] is True


def test_auto_never_picks_unsloth_but_asking_does() -> None:
    assert plan(True, GPU_PACKAGES).name == "qlora"
    assert plan(True, GPU_PACKAGES, backend="unsloth").name == "unsloth"


def test_auto_on_cuda_without_bitsandbytes_is_plain_lora_on_gpu() -> None:
    chosen = plan(True, NO_GPU_PACKAGES)
    assert (chosen.name, chosen.device, chosen.load_in_4bit) == ("cuda-lora", "cuda", False)
    assert "pip install '.[gpu]'" in chosen.reason


@pytest.mark.parametrize(
    ("has_cuda", "importable", "backend", "message"),
    [
        (False, GPU_PACKAGES, "qlora", "backend: qlora needs a CUDA GPU and none is visible"),
        (False, GPU_PACKAGES, "unsloth", "backend: unsloth needs a CUDA GPU"),
        (True, NO_GPU_PACKAGES, "qlora", r"needs bitsandbytes: `pip install -e '.\[gpu\]'`"),
        (True, NO_GPU_PACKAGES, "unsloth", "requirements-unsloth.txt"),
    ],
)
def test_impossible_backends_say_what_to_do(has_cuda, importable, backend, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        plan(has_cuda, importable, backend=backend)


def test_this_machine_picks_a_backend_without_importing_gpu_packages() -> None:
    import sys

    chosen = select_backend(parse_training_config({}))
    assert chosen.name in {"cpu", "qlora", "cuda-lora"}
    assert "unsloth" not in sys.modules
