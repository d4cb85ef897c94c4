"""The dataset loader: folder resolution, validation errors that name file/line/field, TRL shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llm_engineering.application.datasets.reader import load_training_data, resolve_dataset_dir
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.prompts import TWIN_SYSTEM_PROMPT_NO_CONTEXT


def write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_tiny_dataset_loads_in_trl_shapes(tiny_dataset: Path) -> None:
    data = load_training_data(tiny_dataset)
    counts = data.info.counts
    assert counts["instruct_train"] >= 24 and counts["instruct_test"] >= 6 and counts["preference_train"] >= 20
    assert data.info.authors == ["Elena Marchetti"] and len(data.info.hash) == 64
    example = data.sft_train[0]
    assert [m["role"] for m in example["prompt"]] == ["system", "user"]
    assert [m["role"] for m in example["completion"]] == ["assistant"]
    pair = data.dpo_train[0]
    assert pair["prompt"][-1]["role"] == "user"
    assert pair["chosen"][0]["role"] == pair["rejected"][0]["role"] == "assistant"
    assert pair["chosen"][0]["content"] != pair["rejected"][0]["content"]
    # some samples carry RAG context in the user turn, as served
    assert any(e["prompt"][-1]["content"].startswith("Context:\n[1]") for e in data.sft_train)
    assert load_training_data(tiny_dataset).info.hash == data.info.hash


def _datasets(data_dir: Path):
    from llm_engineering.settings import Settings
    from llm_engineering.wiring.container import Container

    return Container(Settings(data_dir=data_dir)).artifacts("datasets")


def test_newest_dataset_is_the_default(tmp_path: Path, tiny_dataset: Path) -> None:
    root = tmp_path / "datasets"
    for name in ("20260101-aaaa", "20260301-bbbb", "20260201-cccc"):
        shutil.copytree(tiny_dataset, root / name)
    assert resolve_dataset_dir(_datasets(tmp_path)).name == "20260301-bbbb"
    (root / "latest").write_text("20260101-aaaa\n")
    assert resolve_dataset_dir(_datasets(tmp_path)).name == "20260101-aaaa"
    (root / "latest").unlink()
    (root / "latest").symlink_to(root / "20260201-cccc")
    assert resolve_dataset_dir(_datasets(tmp_path)).name == "20260201-cccc"
    assert resolve_dataset_dir(_datasets(tmp_path), "20260301-bbbb").name == "20260301-bbbb"  # a version name
    assert resolve_dataset_dir(_datasets(tmp_path), root / "20260101-aaaa").name == "20260101-aaaa"  # a folder


def test_no_dataset_says_to_generate_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no generated dataset under .*run `poe run-generate-datasets` first"):
        resolve_dataset_dir(_datasets(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ConfigurationError, match="is not a generated dataset folder"):
        resolve_dataset_dir(_datasets(tmp_path), tmp_path / "elsewhere")
    with pytest.raises(ConfigurationError, match="dataset folder not found: nope"):
        resolve_dataset_dir(_datasets(tmp_path), "nope")


def test_bad_rows_are_named_by_file_line_and_field(tmp_path: Path) -> None:
    good = {"instruction": "Why?", "answer": "Because.", "messages": None, "source_link": "l", "author": "A"}
    pair = {"prompt": [{"role": "user", "content": "Why?"}], "chosen": "Because.", "rejected": "Dunno."}
    write_jsonl(tmp_path / "instruct_train.jsonl", [good, {**good, "messages": [{"role": "user", "content": "x"}]}])
    write_jsonl(tmp_path / "preference_train.jsonl", [pair])
    with pytest.raises(
        ConfigurationError, match=r"instruct_train.jsonl line 2: the last message must be the assistant"
    ):
        load_training_data(tmp_path)
    write_jsonl(tmp_path / "instruct_train.jsonl", [good])
    (tmp_path / "preference_train.jsonl").write_text(json.dumps(pair) + "\n{oops\n")
    with pytest.raises(ConfigurationError, match=r"preference_train.jsonl line 2: not valid JSON"):
        load_training_data(tmp_path)
    write_jsonl(tmp_path / "preference_train.jsonl", [{**pair, "rejected": ""}])
    with pytest.raises(ConfigurationError, match=r"line 1 field 'rejected': expected a non-empty answer text"):
        load_training_data(tmp_path)
    write_jsonl(tmp_path / "preference_train.jsonl", [{**pair, "prompt": [{"role": "bot", "content": "x"}]}])
    with pytest.raises(ConfigurationError, match=r"field 'prompt': every message needs a role in"):
        load_training_data(tmp_path)


def test_instruction_answer_rows_and_string_prompts_get_the_twin_shape(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "instruct_train.jsonl", [{"instruction": " Why? ", "answer": "Because. "}])
    write_jsonl(tmp_path / "preference_train.jsonl", [{"prompt": "Why?", "chosen": "Because.", "rejected": "No."}])
    data = load_training_data(tmp_path)
    assert data.sft_train[0]["prompt"] == [
        {"role": "system", "content": TWIN_SYSTEM_PROMPT_NO_CONTEXT},
        {"role": "user", "content": "Why?"},
    ]
    assert data.sft_train[0]["completion"] == [{"role": "assistant", "content": "Because."}]
    assert data.dpo_train[0]["prompt"][0]["content"] == TWIN_SYSTEM_PROMPT_NO_CONTEXT
    assert data.sft_test == [] and data.dpo_test == [] and data.info.version == tmp_path.name


def test_sft_only_runs_need_no_preference_pairs(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "instruct_train.jsonl", [{"instruction": "Why?", "answer": "Because."}])
    with pytest.raises(ConfigurationError, match=r"preference_train.jsonl is missing"):
        load_training_data(tmp_path)
    assert load_training_data(tmp_path, need_preference=False).dpo_train == []
