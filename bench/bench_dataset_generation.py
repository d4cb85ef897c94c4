"""Dataset generation throughput against the local vLLM server: samples/s at concurrency 1 vs 16 on the same
extracts, and the grounding rate measured by the independent checker (answer 8-grams found in the source).

    .venv/bin/python bench/bench_dataset_generation.py [--extracts 16] [--concurrency 1 16] [--config FILE]

Uses the settings of the environment (DATA_DIR, MONGODB_URI, LLM_BASE_URL ...). When the feature store holds no
cleaned documents, the sample corpus (data/sample) is imported and embedded first. vLLM is started when nothing
answers at LLM_BASE_URL (and stopped again at the end). Every level runs the whole generation stage (instructions,
filters, round-trip retrieval, rejected answers) with an in-memory cache, so every request reaches the LLM.
Each run (with the CPU model and flags and the load average) is appended to bench/results/dataset_generation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ensure_corpus(container) -> int:
    documents = container.feature_store.cleaned_documents()
    if documents:
        return len(documents)
    from llm_engineering.application.warehouse.transfer import import_warehouse

    print("feature store empty: importing and embedding data/sample")
    import_warehouse(container.warehouse, ROOT / "data" / "sample", show_progress=False)
    container.feature_engineering(show_progress=False).run("all")
    return len(container.feature_store.cleaned_documents())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extracts", type=int, default=16, help="extracts per level (the same ones at each level)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "generate_datasets.yaml")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "dataset_generation.json")
    parser.add_argument("--note", default="", help="what else was going on (kept with the run)")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_at_start = round(os.getloadavg()[0], 2)
    from llm_engineering.infrastructure.ml.inference_engine import cpu_profile, start_llm_server, stop_llm_server
    from llm_engineering.settings import get_settings
    from llm_engineering.wiring import get_container
    from tools.generate_datasets import read_dataset_config

    settings = get_settings()
    container = get_container(settings)
    documents = ensure_corpus(container)
    base = read_dataset_config(args.config)
    profile = cpu_profile()
    started_here = start_llm_server(settings)
    levels = []
    grounding = None
    try:
        for concurrency in args.concurrency:
            config = base.model_copy(update={"concurrency": concurrency, "hf_datasets": False})
            service = container.dataset_generation(config, use_cache=False, show_progress=False)
            source = service.load(None)
            extracts = service.extract(source, args.extracts)
            if not levels:  # warm-up (compiled graphs, the embedding model, connections): not timed
                service.generate(extracts.model_copy(update={"extracts": extracts.extracts[:1]}))
            load = round(os.getloadavg()[0], 2)
            generation = service.generate(extracts)
            pairs = sum(1 for r in generation.rejected if r is not None)
            level = {
                "concurrency": concurrency,
                "extracts": len(extracts.extracts),
                "instructions_generated": generation.instructions_generated,
                "samples": len(generation.candidates),
                "preference_pairs": pairs,
                "wall_s": round(generation.wall_s, 2),
                "samples_per_s": round(len(generation.candidates) / generation.wall_s, 3),
                "extracts_per_s": round(len(extracts.extracts) / generation.wall_s, 3),
                "llm_calls": generation.llm_calls,
                "completion_tokens": generation.completion_tokens,
                "completion_tokens_per_s": round(generation.completion_tokens / generation.wall_s, 1),
                "timings_s": generation.timings_s,
                "drops": generation.drops,
                "load_avg_1m_before": load,
            }
            levels.append(level)
            print(
                f"c={concurrency:>2}: {level['samples']} samples from {level['extracts']} extracts in "
                f"{level['wall_s']:.1f}s = {level['samples_per_s']:.2f} samples/s, "
                f"{level['completion_tokens_per_s']:.0f} completion tokens/s (load {load})"
            )
            if concurrency == max(args.concurrency):  # grounding, as report.json computes it
                folder = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
                try:
                    report = service.write(source, extracts, generation, folder / "out")
                    grounding = report.grounding
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            service.close()
    finally:
        if started_here:
            stop_llm_server(settings)
    by_level = {level["concurrency"]: level for level in levels}
    low, high = min(by_level), max(by_level)
    speedup = {
        "samples_per_s": round(by_level[high]["samples_per_s"] / by_level[low]["samples_per_s"], 2),
        "extracts_per_s": round(by_level[high]["extracts_per_s"] / by_level[low]["extracts_per_s"], 2),
        "completion_tokens_per_s": round(
            by_level[high]["completion_tokens_per_s"] / by_level[low]["completion_tokens_per_s"], 2
        ),
    }
    print(f"c={high} vs c={low}: {speedup['samples_per_s']}x samples/s ({speedup['extracts_per_s']}x extracts/s)")
    if grounding:
        print(f"grounding: {grounding['fully_grounded_share']} of {grounding['answers']} answers fully grounded")
    result = {
        "model": settings.llm_model_id,
        "llm_base_url": settings.llm_base_url,
        "vllm_max_num_seqs": settings.llm_max_num_seqs,
        "corpus": {"documents": documents, "extracts_per_level": args.extracts},
        "config": str(args.config.relative_to(ROOT)) if args.config.is_relative_to(ROOT) else str(args.config),
        "levels": levels,
        f"speedup_c{high}_vs_c{low}": speedup,
        "goal": f"samples/s at c={high} >= 5x c={low}; >= 0.95 of answers fully grounded",
        "grounding": grounding,
        "cpu": {
            "model": profile.model,
            "isa": profile.isa,
            "cores": len(profile.cores),
            "flags": sorted(f for f in profile.flags if f.startswith(("avx", "amx", "fma", "f16c"))),
        },
        "load_avg_1m_at_start": load_at_start,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": args.note,
    }
    # Every run is kept: on a shared machine one run says little, the spread says more.
    existing = json.loads(args.output.read_text()) if args.output.exists() else {}
    runs = existing.get("runs", []) if isinstance(existing.get("runs"), list) else []
    runs.append(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"benchmark": "dataset_generation", "runs": runs}, indent=2) + "\n")
    print(f"wrote {args.output} (run {len(runs)})")
    container.close()


if __name__ == "__main__":
    main()
