"""End-to-end latency of POST /rag on the running RAG service: p50/p95 overall and per stage.

    poe run-llm-server; poe run-inference-ml-service &      # with the sample corpus loaded (see docs/inference.md)
    .venv/bin/python bench/bench_rag_latency.py [--url http://127.0.0.1:8010] [--requests 20] [--concurrency 1]

Questions come from data/sample/qa.jsonl (the sample corpus's QA set). Client-side wall time is measured
around each HTTP call; the stage breakdown is what the service reports in `timings_ms`.
Results: bench/results/rag_latency.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    value = common.percentile(values, q)
    return float("nan") if value is None else round(value, 1)


async def run(url: str, questions: list[str], concurrency: int, k: int, max_tokens: int | None, key: str | None):
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    semaphore = asyncio.Semaphore(concurrency)
    results: list[dict] = []
    async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as client:

        async def one(question: str) -> None:
            async with semaphore:
                started = time.perf_counter()
                response = await client.post("/rag", json={"query": question, "k": k, "max_tokens": max_tokens})
                wall_ms = (time.perf_counter() - started) * 1000
                body = response.json()
                results.append({"status": response.status_code, "wall_ms": wall_ms, **body})

        started = time.perf_counter()
        await asyncio.gather(*(one(q) for q in questions))
        return results, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=None, help="answer length (default RAG_MAX_ANSWER_TOKENS)")
    parser.add_argument("--qa", type=Path, default=ROOT / "data" / "sample" / "qa.jsonl")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "rag_latency.json")
    args = parser.parse_args()

    from llm_engineering.settings import get_settings

    settings = get_settings()
    url = args.url or f"http://{settings.inference_host}:{settings.inference_port}"
    key = settings.inference_api_key.get_secret_value() if settings.inference_api_key else None
    questions = [json.loads(line)["question"] for line in args.qa.read_text().splitlines() if line.strip()]
    questions = (questions * (args.requests // max(1, len(questions)) + 1))[: args.requests]

    # Warm-up: first request loads the embedding model and compiles the JSON grammars; not measured.
    asyncio.run(run(url, questions[:1], 1, args.k, args.max_tokens, key))
    results, wall = asyncio.run(run(url, questions, args.concurrency, args.k, args.max_tokens, key))
    ok = [r for r in results if r["status"] == 200]
    if not ok:
        raise SystemExit(f"no successful request; first error: {results[0] if results else 'none'}")
    stages = sorted({stage for r in ok for stage in r["timings_ms"]})
    breakdown = {
        stage: {
            "p50_ms": percentile([r["timings_ms"][stage] for r in ok if stage in r["timings_ms"]], 50),
            "p95_ms": percentile([r["timings_ms"][stage] for r in ok if stage in r["timings_ms"]], 95),
            "mean_ms": round(statistics.fmean(r["timings_ms"][stage] for r in ok if stage in r["timings_ms"]), 1),
        }
        for stage in stages
    }
    walls = [r["wall_ms"] for r in ok]
    report = {
        "benchmark": "rag_latency",
        "url": url,
        "requests": len(results),
        "ok": len(ok),
        "errors": sorted({r["status"] for r in results if r["status"] != 200}),
        "concurrency": args.concurrency,
        "k": args.k,
        "end_to_end_ms": {"p50": percentile(walls, 50), "p95": percentile(walls, 95), "max": round(max(walls), 1)},
        "requests_per_s": round(len(ok) / wall, 3),
        "stages_ms": breakdown,
        "tokens_mean": {
            key: round(statistics.fmean(r["tokens"][key] for r in ok), 1) for key in ("prompt", "completion", "context")
        },
        "machine": common.machine(torch=False) | {"platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(json.dumps({k: report[k] for k in ("end_to_end_ms", "stages_ms", "tokens_mean")}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
