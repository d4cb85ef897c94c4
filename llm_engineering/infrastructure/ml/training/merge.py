"""Merge a LoRA adapter into its base: a standalone HF checkpoint vLLM serves as is.

The merged folder holds safetensors weights, the tokenizer with the twin's chat template
(`chat_template.jinja` = TWIN_CHAT_TEMPLATE, so serving renders prompts exactly as training did), a
generation config that stops on `<|im_end|>`, and a model card (README.md) with the base model, the dataset
version and hash, the hyperparameters and the final metrics. It is written to `<out>.tmp` and renamed at the
end, so a crash never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml
from loguru import logger

from llm_engineering.domain.prompts import IM_END, TWIN_CHAT_TEMPLATE

COMPLETE_MARKER = ".merged"


def is_merged(path: Path) -> bool:
    return (Path(path) / COMPLETE_MARKER).is_file() and (Path(path) / "config.json").is_file()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_model_card(
    *,
    title: str,
    stage: str,
    base_model: str,
    base_model_source: str,
    dataset: dict[str, Any],
    hyperparameters: dict[str, Any],
    metrics: dict[str, Any],
    backend: dict[str, Any],
    versions: dict[str, str],
    parent: str | None = None,
) -> str:
    """A Hugging Face model card (YAML front matter + Markdown) for a merged checkpoint."""
    front = {
        "base_model": base_model_source,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["llm-twin", stage, "lora", "trl", "peft"],
        "license": "apache-2.0",
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {title}",
        "",
        f"LLM Twin checkpoint, stage **{stage}**: LoRA fine-tuned with TRL on the author's own writing, then merged "
        "into the base weights (a standalone checkpoint: no adapter needed at serving time).",
        "",
        f"- Base model: `{base_model_source}` (loaded from `{base_model}`)",
    ]
    if parent:
        lines.append(f"- Started from: `{parent}`")
    lines += [
        f"- Dataset: version `{dataset.get('version')}`, sha256 `{dataset.get('hash')}`",
        f"- Dataset counts: {json.dumps(dataset.get('counts', {}))}",
        f"- Authors: {', '.join(dataset.get('authors', [])) or 'unknown'}",
        f"- Backend: `{backend.get('name')}` on {backend.get('device')} ({backend.get('precision')})",
        f"- Libraries: {', '.join(f'{k} {v}' for k, v in versions.items())}",
        "",
        "## Prompt format",
        "",
        "ChatML with no default system turn (`TWIN_CHAT_TEMPLATE`, saved as `chat_template.jinja`). Serve with this "
        f"template and stop on `{IM_END}`.",
        "",
        "## Final metrics",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if not isinstance(v, dict | list)],
        "",
        "## Hyperparameters",
        "",
        "```yaml",
        yaml.safe_dump(hyperparameters, sort_keys=False).strip(),
        "```",
        "",
        "## Limitations",
        "",
        "Trained on one author's texts; it imitates their voice and can state their facts wrongly. The default "
        "base (SmolLM2-135M-Instruct) is tiny: expect fluent-looking but often wrong answers. Pair it with "
        "retrieval (the RAG service) and train a larger base on a GPU for real use (docs/training.md).",
        "",
    ]
    return "\n".join(lines)


def merge_adapter(base_model: str, adapter_dir: Path, output_dir: Path, model_card: str | None = None) -> Path:
    """Merge `adapter_dir` (a PEFT LoRA adapter) into `base_model` and save a standalone checkpoint.

    The base is loaded unquantised in its own dtype on the CPU (merging into 4-bit weights would round the
    update away), so a QLoRA adapter merges the same way as a CPU LoRA one.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output_dir = Path(output_dir)
    started = time.monotonic()
    staging = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype="auto", device_map=None)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    merged = model.merge_and_unload()
    merged.config.use_cache = True
    dtype = next(merged.parameters()).dtype
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        merged = merged.to(torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    tokenizer.chat_template = TWIN_CHAT_TEMPLATE
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    generation = merged.generation_config
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        eos = generation.eos_token_id
        eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        if im_end not in eos_ids:
            generation.eos_token_id = [im_end, *eos_ids] if eos_ids else im_end
    staging.mkdir(parents=True)
    merged.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if model_card:
        (staging / "README.md").write_text(model_card, encoding="utf-8")
    (staging / COMPLETE_MARKER).write_text(f"base={base_model}\nadapter={adapter_dir}\n", encoding="utf-8")
    shutil.rmtree(output_dir, ignore_errors=True)
    staging.rename(output_dir)
    logger.info(f"Merged {adapter_dir} into {base_model} -> {output_dir} in {time.monotonic() - started:.1f}s")
    return output_dir
