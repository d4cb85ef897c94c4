"""Which checkpoints `base`, `sft`, `twin` resolve to (missing ones are clear errors), and perplexity with the real
packaged SmolLM2 on a known sequence, checked against transformers' own loss (slow)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.settings import Settings
from tests.integration.evaluation.helpers import make_registry_version


def _fake_checkpoint(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_models_resolve_to_registry_checkpoints_and_missing_ones_are_clear_errors(tmp_path):
    from llm_engineering.infrastructure.ml.model_runtime import resolve_model, resolve_models

    settings = Settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="no version of llm-twin is registered yet"):
        resolve_model(settings, "twin")
    source = _fake_checkpoint(tmp_path / "ckpt")
    make_registry_version(settings.models_dir, source, "v0001")
    twin, sft = resolve_model(settings, "twin"), resolve_model(settings, "sft")
    assert twin.registry_version == "v0001" and twin.registry_name == "llm-twin" and Path(twin.path).name == "v0001"
    assert Path(sft.path).name == "sft" and sft.registry_name == "llm-twin-sft"
    with pytest.raises(ConfigurationError, match=r"llm-twin:v0009 does not exist; available: v0001"):
        resolve_model(settings, "llm-twin:v0009")
    with pytest.raises(ConfigurationError, match="not found"):
        resolve_model(settings, "no-such-thing/anywhere")
    mine = resolve_model(settings, f"mine={source}")
    assert mine.name == "mine" and mine.registry_version is None
    # `base` is the twin's own base (its manifest), and it is added for the DPO reference when not asked for
    models = resolve_models(settings, ["twin"])
    assert [(m.name, m.voice_only) for m in models] == [("twin", False), ("base", True)]
    assert models[1].path == str(source.resolve())
    with pytest.raises(ConfigurationError, match="share the label"):
        resolve_models(settings, ["twin", "twin"])


@pytest.mark.slow
def test_perplexity_of_a_known_sequence_matches_the_models_own_loss(prepared_model_dir):
    import torch

    from llm_engineering.application.evaluation.voice import perplexity
    from llm_engineering.infrastructure.ml.scorer import TransformersScorer

    scorer = TransformersScorer(prepared_model_dir, threads=2, batch_size=2)
    prompt = [{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "What is the capital of France?"}]  # fmt: skip
    answer = "The capital of France is Paris."
    total, tokens = scorer.answer_logprobs(prompt, answer)
    ids, prompt_len = scorer.encode(prompt, answer)
    tokenizer = scorer._tokenizer
    # the scored tokens are exactly the answer, its end-of-turn and the newline (what SFT trains on)
    assert tokenizer.decode(ids[prompt_len:]) == answer + "<|im_end|>\n" and tokens == len(ids) - prompt_len
    labels = torch.tensor([[-100] * prompt_len + ids[prompt_len:]])
    with torch.no_grad():
        loss = scorer._model(input_ids=torch.tensor([ids]), labels=labels).loss.item()
    ppl, nll = perplexity([total], [tokens])
    assert nll == pytest.approx(loss, rel=1e-4) and ppl == pytest.approx(math.exp(loss), rel=1e-4)
    # a fluent, correct answer is far likelier than word salad; batching changes nothing
    salad, salad_tokens = scorer.answer_logprobs(prompt, "Purple seventeen under the bananas.")
    assert salad < total - 20
    assert scorer.answer_logprobs_many([(prompt, answer), (prompt, "Purple seventeen under the bananas.")]) == [
        pytest.approx((total, tokens), rel=1e-5),
        pytest.approx((salad, salad_tokens), rel=1e-5),
    ]
    scorer.close()
