"""GPU check of the training path (issue #10, item 9): the project's QLoRA SFT -> merge -> DPO on CUDA.

One self-contained script for a GPU machine without network or model weights. For two randomly initialised
models built from config — the SmolLM2-135M shape and the SmolLM2-1.7B shape (LlamaConfig with its dims) —
it runs the project's own stage functions (`run_sft`, `merge_adapter`, `run_dpo` with the `qlora` backend:
4-bit NF4 + double quantisation, bf16 compute, paged 8-bit AdamW, gradient checkpointing) for a few steps on
the hand-made tiny dataset, and records step time, tokens/s and peak GPU memory in `$OUT/training_gpu.json`.
Random weights make the losses meaningless; the numbers that matter are speed and memory.

    python bench/gpu/check_training_gpu.py [--steps 8] [--shapes 135m,1.7b] [--out $OUT]

Needs: Python >= 3.11, torch with CUDA, transformers >= 5, peft, accelerate, trl 1.16, bitsandbytes, datasets,
and the project's light dependencies (pydantic, pydantic-settings, pyyaml, loguru). Wheels that are missing
can be carried in a folder and installed offline first: `--wheels DIR` (pip install --no-index --find-links).
Without CUDA it stops at once with exit code 2 and says so. A tokenizer is trained on the spot from the
dataset text (byte-level BPE + the ChatML tokens), since no model files can be downloaded there.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TINY_DATASET = PROJECT_ROOT / "tests" / "integration" / "training" / "tiny_dataset"
NEEDED = ("torch", "transformers", "peft", "accelerate", "trl", "bitsandbytes", "datasets", "pydantic",
          "pydantic_settings", "yaml", "loguru")  # fmt: skip

# SmolLM2 shapes (HuggingFaceTB/SmolLM2-135M-Instruct and -1.7B-Instruct config.json)
SHAPES = {
    "135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
             "num_key_value_heads": 3, "rope_theta": 100000.0},
    "1.7b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24, "num_attention_heads": 32,
             "num_key_value_heads": 32, "rope_theta": 130000.0},
}  # fmt: skip
VOCAB_SIZE = 49152


def install_wheels(wheels: Path) -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if not missing:
        return
    print(f"installing from {wheels}: missing {missing}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), *map(_dist_name, missing)],
        check=True,
    )


def _dist_name(module: str) -> str:
    return {"yaml": "pyyaml", "pydantic_settings": "pydantic-settings"}.get(module, module)


def check_environment() -> dict:
    if importlib.util.find_spec("torch") is None:
        raise SystemExit("torch is not installed: this check needs torch with CUDA")
    import torch

    if not torch.cuda.is_available():
        print("No CUDA device: this check needs a GPU machine (nothing was run).", file=sys.stderr)
        raise SystemExit(2)
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"missing Python packages: {', '.join(missing)} (carry their wheels and pass --wheels DIR)")
    from importlib.metadata import version

    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        **{p: version(p) for p in ("torch", "transformers", "trl", "peft", "bitsandbytes", "datasets", "accelerate")},
    }


def train_tokenizer(folder: Path) -> None:
    """A byte-level BPE tokenizer with the ChatML specials, trained on the tiny dataset (no hub needed)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from llm_engineering.domain.prompts import TWIN_CHAT_TEMPLATE

    texts = []
    for path in TINY_DATASET.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [str(v) for v in row.values() if isinstance(v, str)]
            texts += [m["content"] for m in row.get("messages") or row.get("prompt") or [] if isinstance(m, dict)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer.train_from_iterator(texts * 4, trainers.BpeTrainer(vocab_size=4000, special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    fast.chat_template = TWIN_CHAT_TEMPLATE
    fast.save_pretrained(folder)


def build_random_model(shape: str, folder: Path) -> int:
    """A randomly initialised Llama of the given SmolLM2 shape, saved in bf16 (QLoRA quantises it on load)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPES[shape],
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    del model
    torch.cuda.empty_cache()
    return params


def run_shape(shape: str, steps: int, scratch: Path) -> dict:
    import torch

    from llm_engineering.application.datasets.reader import load_training_data
    from llm_engineering.infrastructure.ml.training.backends import select_backend
    from llm_engineering.infrastructure.ml.training.config import parse_training_config
    from llm_engineering.infrastructure.ml.training.dpo import run_dpo
    from llm_engineering.infrastructure.ml.training.merge import merge_adapter
    from llm_engineering.infrastructure.ml.training.sft import run_sft

    base = scratch / f"base-{shape}"
    base.mkdir(parents=True)
    train_tokenizer(base)
    started = time.monotonic()
    params = build_random_model(shape, base)
    build_s = time.monotonic() - started
    config = parse_training_config(
        {
            "model": str(base),
            "backend": "qlora",
            "precision": "bf16",
            "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"},
            "sft": {"max_steps": steps, "batch_size": 8, "max_length": 512, "logging_steps": 1, "save_steps": 10_000},
            "dpo": {"max_steps": steps, "batch_size": 4, "max_length": 512, "logging_steps": 1, "save_steps": 10_000},
            "tracking": {"comet": False},
        },
        source="GPU check config",
    )
    plan = select_backend(config)
    if plan.name != "qlora":
        raise RuntimeError(f"expected the qlora backend on this machine, got {plan.name} ({plan.reason})")
    data = load_training_data(TINY_DATASET)
    out: dict = {
        "shape": shape,
        "parameters": params,
        "build_random_model_s": round(build_s, 1),
        "plan": plan.model_dump(),
    }
    torch.cuda.reset_peak_memory_stats()
    sft = run_sft(config, data, base_model=str(base), stage_dir=scratch / f"sft-{shape}", plan=plan)
    out["sft"] = _stage_numbers(sft.metrics)
    out["sft"]["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    torch.cuda.empty_cache()
    started = time.monotonic()
    merged = merge_adapter(str(base), Path(sft.adapter_dir), scratch / f"sft-merged-{shape}")
    out["merge_s"] = round(time.monotonic() - started, 1)
    torch.cuda.reset_peak_memory_stats()
    dpo = run_dpo(config, data, sft_model=str(merged), stage_dir=scratch / f"dpo-{shape}", plan=plan)
    out["dpo"] = _stage_numbers(dpo.metrics)
    out["dpo"]["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    torch.cuda.empty_cache()
    return out


def _stage_numbers(metrics: dict) -> dict:
    keys = ("global_step", "s_per_step", "tokens_per_s", "session_tokens", "train_runtime_s", "wall_s",
            "first_logged_loss", "last_logged_loss", "eval_rewards_accuracies")  # fmt: skip
    return {k: metrics.get(k) for k in keys if k in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="SFT and DPO optimizer steps per shape")
    parser.add_argument("--shapes", default="135m,1.7b", help="comma-separated: 135m, 1.7b")
    parser.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for training_gpu.json")
    parser.add_argument("--wheels", type=Path, default=None, help="folder of wheels to install offline if missing")
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT_ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.wheels:
        install_wheels(args.wheels)
    environment = check_environment()
    print(json.dumps(environment), flush=True)
    result: dict = {"benchmark": "training_gpu", "environment": environment, "steps": args.steps, "shapes": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
            try:
                result["shapes"].append(run_shape(shape, args.steps, Path(scratch)))
            except Exception as exc:  # record and go on: the other shape may still work
                result["shapes"].append({"shape": shape, "error": repr(exc), "traceback": traceback.format_exc()})
            (out / "training_gpu.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            print(json.dumps(result["shapes"][-1], indent=2), flush=True)
    failed = [s["shape"] for s in result["shapes"] if "error" in s]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
