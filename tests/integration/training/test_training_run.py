"""A real (short) CPU training run on the packaged SmolLM2-135M: SFT then DPO with LoRA, merged, registered,
tracked offline — and what it leaves behind is checked: falling losses, logged DPO rewards, exact merges,
the registry layout, the model card, the twin's chat template, the Comet archive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_engineering.domain.prompts import TWIN_CHAT_TEMPLATE
from tests.integration.training.helpers import link_packaged_model, subset_dataset, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, packaged_model_dir: Path) -> Iterator[tuple]:
    """One short run for the whole module: 8 training samples, SFT 12 steps (3 epochs), DPO 6 steps."""
    from llm_engineering.settings import Settings, get_settings
    from llm_engineering.wiring.training import train_twin

    root = tmp_path_factory.mktemp("trained")
    data_dir = root / "data"
    link_packaged_model(data_dir, packaged_model_dir)
    dataset = subset_dataset(root / "dataset", train=8, test=4)
    config = tiny_config(
        sft={"max_steps": 12, "max_length": 160, "save_steps": 6},
        dpo={"max_steps": 6, "max_length": 160, "save_steps": 6},
        output={"keep_checkpoints": True},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_DIR", str(data_dir))
        patch.delenv("COMET_API_KEY", raising=False)
        get_settings.cache_clear()
        settings = Settings()
        report = train_twin(config, dataset, settings=settings)
        yield report, settings, dataset
    get_settings.cache_clear()


def losses(history: list[dict]) -> list[float]:
    return [entry["loss"] for entry in history if "loss" in entry]


def test_sft_training_loss_falls(trained) -> None:
    report, _, _ = trained
    values = losses(report.sft.log_history)
    assert len(values) == 12
    first_epoch, last_epoch = sum(values[:4]) / 4, sum(values[-4:]) / 4
    print(f"SFT loss, epoch 1 mean {first_epoch:.3f} -> epoch 3 mean {last_epoch:.3f}")
    assert last_epoch < first_epoch - 0.3
    metrics = report.sft.metrics
    assert metrics["template_identity"] is True
    assert metrics["eval_loss"] < metrics["eval_loss_before"]  # held-out answers: the twin beats the base
    assert metrics["tokens_per_s"] > 0 and metrics["s_per_step"] > 0


def test_dpo_logs_rewards_and_its_loss_falls(trained) -> None:
    report, _, _ = trained
    history = report.dpo.log_history
    values = losses(history)
    assert values[0] == pytest.approx(0.6931, abs=1e-3)  # log 2: the policy starts equal to its reference
    assert sum(values[-2:]) / 2 < values[0]
    step_logs = [e for e in history if "loss" in e]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert all(key in entry for entry in step_logs), key
    metrics = report.dpo.metrics
    assert metrics["eval_rewards_accuracies"] is not None and metrics["eval_rewards_margins"] > 0
    assert report.dpo.base_model == report.sft.merged_dir  # DPO started from the merged SFT model


def test_registered_version_layout(trained) -> None:
    from llm_engineering.infrastructure.registry import resolve_registered_model

    report, settings, dataset = trained
    version = Path(report.registered.path)
    assert version == settings.models_dir / "llm-twin" / "v0001"
    assert (settings.models_dir / "llm-twin" / "latest").read_text().strip() == "v0001"
    assert resolve_registered_model(settings.models_dir, "llm-twin") == version.resolve()
    assert resolve_registered_model(settings.models_dir, "llm-twin-sft") == (version / "sft").resolve()
    for folder in (version, version / "sft"):
        for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "README.md"):
            assert (folder / name).is_file(), folder / name
        assert (folder / "chat_template.jinja").read_text() == TWIN_CHAT_TEMPLATE
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["dataset"]["hash"] == report.dataset.hash and manifest["stages"] == ["sft", "dpo"]
    assert manifest["metrics"]["dpo/eval_rewards_accuracies"] == report.dpo.metrics["eval_rewards_accuracies"]
    card = (version / "README.md").read_text()
    assert report.dataset.hash in card and "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "learning_rate" in card and "dpo/eval_rewards_accuracies" in card
    history = json.loads((version / "training" / "sft_log_history.json").read_text())
    assert losses(history) == losses(report.sft.log_history)
    assert json.loads((version / "training" / "report.json").read_text())["registered"]["version"] == "v0001"
    generation = json.loads((version / "generation_config.json").read_text())
    assert generation["eos_token_id"] in (2, [2])  # <|im_end|> stops generation
    # tracked offline: a Comet archive, no key, no network
    assert report.tracking["mode"] == "offline" and Path(report.tracking["archive"]).is_file()
    assert Path(report.tracking["archive"]).parent == settings.data_dir / "comet"


def _logits(model, input_ids):
    import torch

    with torch.no_grad():
        return model(input_ids=input_ids).logits


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_merged_weights_equal_base_plus_adapter(trained, stage: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report, _, _ = trained
    result = report.sft if stage == "sft" else report.dpo
    merged_dir = Path(report.sft_model_path if stage == "sft" else report.model_path)
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "How does reciprocal rank fusion work?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    input_ids = tokenizer(text + "It sums", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(result.base_model).eval()
    base_logits = _logits(base, input_ids)
    adapted = PeftModel.from_pretrained(base, result.adapter_dir).eval()
    adapted_logits = _logits(adapted, input_ids)
    merged_logits = _logits(AutoModelForCausalLM.from_pretrained(merged_dir).eval(), input_ids)
    changed = (adapted_logits - base_logits).abs().max().item()
    difference = (merged_logits - adapted_logits).abs().max().item()
    print(f"{stage}: adapter moved logits by up to {changed:.3f}; merged vs base+adapter max diff {difference:.2e}")
    assert changed > 1e-2  # the adapter is not a no-op
    assert torch.allclose(merged_logits, adapted_logits, atol=1e-3, rtol=1e-4)


def test_run_dir_keeps_checkpoints_only_when_asked(trained) -> None:
    report, _, _ = trained
    run_dir = Path(report.run_dir)
    assert (run_dir / "sft" / "adapter" / "adapter_config.json").is_file()
    assert not (run_dir / "sft" / "merged").exists()  # moved into the registry, not copied


def test_same_data_and_config_give_the_same_losses(trained, tmp_path: Path) -> None:
    from llm_engineering.application.datasets.reader import load_training_data
    from llm_engineering.infrastructure.ml.training.backends import select_backend
    from llm_engineering.infrastructure.ml.training.sft import run_sft

    report, _, dataset = trained
    config = tiny_config(sft={"max_steps": 3, "max_length": 160, "save_steps": 100, "eval": False})
    data = load_training_data(dataset)
    runs = [
        run_sft(config, data, base_model=report.base_model, stage_dir=tmp_path / f"r{i}", plan=select_backend(config))
        for i in range(2)
    ]
    assert len(losses(runs[0].log_history)) == 3
    assert losses(runs[0].log_history) == losses(runs[1].log_history)
