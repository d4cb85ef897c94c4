"""Training renders exactly what serving renders: the tokens TRL's SFTTrainer feeds for a sample equal
`apply_chat_template(prompt, add_generation_prompt=True)` + the answer + `<|im_end|>`, token for token, with
the prompt masked and the answer trained. Real packaged tokenizer, real SFTTrainer; a 1-layer random model
stands in for the weights (the tokens do not depend on them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_engineering.domain.prompts import TWIN_CHAT_TEMPLATE, render_chatml


@pytest.fixture(scope="module")
def sft_trainer_and_tokenizer(packaged_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    from llm_engineering.application.datasets.reader import load_training_data
    from llm_engineering.infrastructure.ml.training.backends import checkpointing_field
    from llm_engineering.infrastructure.ml.training.common import load_twin_tokenizer, to_dataset
    from tests.integration.training.helpers import TINY_DATASET

    tokenizer = load_twin_tokenizer(str(packaged_model_dir))
    torch.manual_seed(0)
    tiny = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=1024,
        )
    )
    data = load_training_data(TINY_DATASET)
    args = SFTConfig(
        output_dir=str(tmp_path_factory.mktemp("sft")),
        use_cpu=True,
        bf16=False,
        **{checkpointing_field(): False},
        report_to="none",
        max_length=4096,
        completion_only_loss=True,
    )
    examples = data.sft_train + data.sft_test
    trainer = SFTTrainer(model=tiny, args=args, train_dataset=to_dataset(examples), processing_class=tokenizer)
    return trainer, tokenizer, examples


def test_the_twin_template_is_set(sft_trainer_and_tokenizer) -> None:
    _, tokenizer, _ = sft_trainer_and_tokenizer
    assert tokenizer.chat_template == TWIN_CHAT_TEMPLATE


def test_trainer_tokens_equal_serving_rendering_plus_answer(sft_trainer_and_tokenizer) -> None:
    trainer, tokenizer, examples = sft_trainer_and_tokenizer
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    with_context = 0
    for index, example in enumerate(examples):
        prepared = trainer.train_dataset[index]
        serving = tokenizer.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=True)
        serving = list(serving["input_ids"]) if hasattr(serving, "keys") else list(serving)
        answer = tokenizer(example["completion"][0]["content"], add_special_tokens=False)["input_ids"]
        expected = serving + answer + [im_end] + newline
        assert list(prepared["input_ids"]) == expected, f"sample {index} renders differently"
        labels = list(prepared["labels"])
        assert labels[: len(serving)] == [-100] * len(serving), f"sample {index}: prompt tokens are trained"
        assert labels[len(serving) :] == expected[len(serving) :], f"sample {index}: answer tokens are masked"
        # and the string is the domain's plain-Python ChatML rendering (what dataset generation counts with)
        text = render_chatml([*example["prompt"], *example["completion"]])
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == expected
        with_context += example["prompt"][-1]["content"].startswith("Context:")
    assert with_context > 0  # RAG-shaped samples are covered too


def test_the_runtime_guard_accepts_it(sft_trainer_and_tokenizer) -> None:
    from llm_engineering.infrastructure.ml.training.sft import check_template_identity

    trainer, tokenizer, examples = sft_trainer_and_tokenizer
    counts = check_template_identity(trainer, tokenizer, examples)
    assert counts["prompt_tokens"] > 10 and counts["answer_tokens"] > 10


def test_the_guard_checks_the_first_sample_trl_keeps(sft_trainer_and_tokenizer, tmp_path: Path) -> None:
    """A sample whose prompt alone fills max_length (a long retrieved context) is dropped by TRL: the guard
    compares the first kept sample with its own row, not with the dropped first row (CI failed on that)."""
    from trl import SFTConfig, SFTTrainer

    from llm_engineering.infrastructure.ml.training.backends import checkpointing_field
    from llm_engineering.infrastructure.ml.training.common import prompt_ids, to_dataset
    from llm_engineering.infrastructure.ml.training.sft import check_template_identity

    trainer, tokenizer, examples = sft_trainer_and_tokenizer
    lengths = [len(prompt_ids(tokenizer, e["prompt"])) for e in examples]
    longest = max(range(len(examples)), key=lengths.__getitem__)
    shorter = [e for e, n in zip(examples, lengths, strict=True) if n < lengths[longest]]
    ordered = [examples[longest], *shorter]
    max_length = lengths[longest]  # the first prompt alone fills it
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        use_cpu=True,
        bf16=False,
        **{checkpointing_field(): False},
        report_to="none",
        max_length=max_length,
        completion_only_loss=True,
    )
    cut = SFTTrainer(model=trainer.model, args=args, train_dataset=to_dataset(ordered), processing_class=tokenizer)
    assert len(cut.train_dataset) < len(ordered)  # TRL dropped the first sample
    counts = check_template_identity(cut, tokenizer, ordered, max_length)
    assert counts["sample"] == 2 and counts["prompt_tokens"] == lengths[examples.index(shorter[0])]
