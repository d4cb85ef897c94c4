"""How faithful an exported GGUF is to the checkpoint it came from (the tests and bench/bench_engines.py use it).

- Perplexity of held-out answers: the GGUF is loaded independently, by transformers' GGUF reader (dequantised to
  fp32), and scored exactly as the evaluation scores checkpoints (TransformersScorer: answer tokens after the
  rendered prompt) — so the ratio to the checkpoint's perplexity is the loss quantisation costs.
- Greedy identity: the tokens llama.cpp's server generates from a GGUF, compared with transformers' greedy
  `generate()` on the checkpoint, for the same prompt token ids.
- Template identity: llama.cpp's own rendering (`/apply-template`, then `/tokenize`) against the tokenizer's.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_engineering.domain.llm import Messages

Item = tuple[Messages, str]  # (prompt messages, reference answer)


def held_out_items(dataset_dir: Path, limit: int | None = None) -> list[Item]:
    """The held-out SFT answers of a dataset folder (instruct_test.jsonl), in the served chat shape."""
    from llm_engineering.application.datasets.reader import load_training_data

    data = load_training_data(Path(dataset_dir))
    items = [(example["prompt"], example["completion"][0]["content"]) for example in data.sft_test]
    return items[:limit] if limit else items


def perplexity(model_dir: str | Path, items: Sequence[Item], threads: int | None = None) -> dict[str, float]:
    """exp(mean negative log-likelihood) of the answers' tokens under the checkpoint in `model_dir` (fp32)."""
    from llm_engineering.infrastructure.ml.scorer import TransformersScorer

    scorer = TransformersScorer(model_dir, cpu_dtype="fp32", threads=threads, max_length=2048)
    try:
        results = scorer.answer_logprobs_many(list(items))
    finally:
        scorer.close()
    total = sum(lp for lp, _ in results)
    tokens = sum(n for _, n in results)
    return {"perplexity": math.exp(-total / tokens), "tokens": tokens, "nll": -total / tokens}


def gguf_as_checkpoint(gguf: Path, target: Path) -> Path:
    """Load `gguf` with transformers' GGUF reader (dequantised to fp32) and save it as a plain checkpoint, so it
    is scored by the same code as any checkpoint. transformers refuses to save a GGUF-loaded model directly."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [name for name in missing if name != "lm_head.weight"]  # tied embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF load mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    plain.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return target


def gguf_perplexity(gguf: Path, items: Sequence[Item], threads: int | None = None) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="gguf-ppl-"))
    try:
        return perplexity(gguf_as_checkpoint(gguf, work / "model"), items, threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prompt_ids(tokenizer: Any, messages: Messages) -> list[int]:
    rendered = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    return [int(i) for i in (rendered["input_ids"] if hasattr(rendered, "keys") else rendered)]


def transformers_greedy(
    model_dir: str | Path, prompts: Sequence[list[int]], n_tokens: int = 64
) -> tuple[list[list[int]], list[list[float]]]:
    """Greedy continuations of each prompt (token ids), fp32, ignoring end of sequence (exactly n_tokens), and at
    each step the margin between the two best logits (a margin near 0 is a tie that any rounding may flip)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tokens: list[list[int]] = []
    margins: list[list[float]] = []
    with torch.no_grad():
        for ids in prompts:
            generated = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=n_tokens,
                min_new_tokens=n_tokens,
                do_sample=False,
                pad_token_id=0,
                output_scores=True,
                return_dict_in_generate=True,
            )
            tokens.append([int(t) for t in generated.sequences[0, len(ids) :]])
            top2 = [torch.topk(score[0].float(), 2).values for score in generated.scores]
            margins.append([float(v[0] - v[1]) for v in top2])
    del model
    return tokens, margins


def _post(base: str, path: str, body: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    request = urllib.request.Request(
        base.rstrip("/") + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a loopback test server
        return json.loads(response.read())


def server_root(base_url: str) -> str:
    """http://host:port for an OpenAI base URL (…/v1)."""
    return base_url.rstrip("/").removesuffix("/v1")


def llama_server_greedy(base_url: str, prompts: Sequence[list[int]], n_tokens: int = 64) -> list[list[int]]:
    """Greedy continuations from llama.cpp's server (`/completion` on token ids, ignoring end of sequence)."""
    root = server_root(base_url)
    out: list[list[int]] = []
    for ids in prompts:
        body = {
            "prompt": list(ids),
            "n_predict": n_tokens,
            "temperature": 0.0,
            "top_k": 1,
            "ignore_eos": True,
            "return_tokens": True,
            "cache_prompt": False,
            "samplers": ["top_k"],
        }
        out.append([int(t) for t in _post(root, "/completion", body)["tokens"]])
    return out


def llama_server_template_ids(base_url: str, messages: Messages) -> tuple[str, list[int]]:
    """What llama.cpp's server renders for `messages` with the GGUF's template, and its tokens."""
    root = server_root(base_url)
    prompt = _post(root, "/apply-template", {"messages": list(messages), "add_generation_prompt": True})["prompt"]
    tokens = _post(root, "/tokenize", {"content": prompt, "add_special": False, "parse_special": True})["tokens"]
    return prompt, [int(t) if not isinstance(t, dict) else int(t["id"]) for t in tokens]


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))
