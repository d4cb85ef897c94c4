"""Generation defaults live with the model version: training writes them into the manifest, the container serves
the registered version with them, and the evaluation's models carry them."""

from __future__ import annotations

import json

from llm_engineering.domain.generation import GenerationDefaults
from llm_engineering.infrastructure.ml.training.config import parse_training_config
from llm_engineering.settings import Settings
from llm_engineering.wiring.container import Container


def _register(models_dir, generation: dict | None) -> None:
    version = models_dir / "llm-twin" / "v0001"
    version.mkdir(parents=True)
    (version / "config.json").write_text("{}", encoding="utf-8")
    manifest = {"name": "llm-twin", "version": "v0001", **({"generation": generation} if generation else {})}
    (version / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (models_dir / "llm-twin" / "latest").write_text("v0001\n", encoding="utf-8")


def test_the_served_version_brings_its_defaults_and_others_get_the_domain_ones(tmp_path):
    settings = Settings(data_dir=tmp_path, llm_model_id="llm-twin")
    _register(settings.models_dir, {"repetition_penalty": 1.3, "long_answer_tokens": 150})
    defaults = Container(settings).served_generation_defaults()
    assert defaults.repetition_penalty == 1.3 and defaults.long_answer_tokens == 150
    assert Container(settings).rag_config().generation == defaults
    assert Container(settings).rag_config().temperature is None  # the model's own temperature unless set
    assert Container(Settings(data_dir=tmp_path, rag_temperature=0.7)).rag_config().temperature == 0.7
    base = Container(Settings(data_dir=tmp_path, llm_model_id="some/hub-model")).served_generation_defaults()
    assert base == GenerationDefaults()


def test_training_config_carries_the_defaults_without_changing_the_run_key():
    plain = parse_training_config({})
    tuned = parse_training_config({"generation": {"repetition_penalty": 1.25}})
    assert tuned.generation.repetition_penalty == 1.25 and plain.generation == GenerationDefaults()
    assert plain.fingerprint() == tuned.fingerprint()  # decoding does not change what training computes


def test_evaluated_models_carry_their_versions_defaults(tmp_path):
    from llm_engineering.infrastructure.ml.model_runtime import resolve_model

    settings = Settings(data_dir=tmp_path)
    _register(settings.models_dir, {"frequency_penalty": 0.5})
    twin = resolve_model(settings, "twin")
    assert twin.registry_version == "v0001" and twin.generation["frequency_penalty"] == 0.5
