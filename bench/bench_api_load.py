"""The RAG service under load and faults, end to end on loopback: the real API process, the real vLLM server,
the embedded warehouse and vector store, the sample corpus.

    .venv/bin/python bench/bench_api_load.py [--scenarios latency,burst,soak,faults] [--soak-s 180]

Scenarios (each result keeps status counts, goodput and p50/p95 of the successes):
- latency: one request at a time — POST /rag (p50/p95 and the per-stage breakdown the service reports) and
  POST /search (p95 over HTTP).
- burst: 2×c requests at concurrency c = 4, 16, 32 for /rag, streamed /v1/chat/completions and /search; clients
  do not retry.
- soak: 32 clients that honour Retry-After loop POST /rag for --soak-s seconds (the issue's acceptance test:
  ≥ 12 answers, 0 × 504, no status ≥ 500 other than 503).
- faults: clients that leave a stream before its first token (slots must come back); vLLM killed (fast 503 +
  Retry-After) then restarted (time to the first answer again); the warehouse stopped then restarted.

Everything runs under a throw-away DATA_DIR on free loopback ports and is stopped afterwards. The CPU model,
flags, LLM dtype and threads are recorded with the numbers. Results: bench/results/api_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = [json.loads(line)["question"] for line in (ROOT / "data/sample/qa.jsonl").read_text().splitlines()]


def percentile(values: list[float], q: float) -> float | None:
    value = common.percentile(values, q)
    return None if value is None else round(value, 2)


def summary(results: list[dict], wall_s: float) -> dict:
    ok = [r for r in results if r["status"] == 200 and not r.get("stream_error")]
    latencies = [r["s"] for r in ok]
    return {
        "requests": len(results),
        "statuses": dict(sorted(Counter(str(r["status"]) for r in results).items())),
        "stream_errors": sum(1 for r in results if r.get("stream_error")),
        "answers": len(ok),
        "goodput_per_min": round(len(ok) / wall_s * 60, 2),
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "degraded": sum(1 for r in ok if r.get("degraded")),
        "wall_s": round(wall_s, 1),
    }


class Stack:
    """Warehouse, vLLM and the API as separate processes, like a user runs them."""

    def __init__(self, data_dir: Path) -> None:
        from llm_engineering.infrastructure.local_services import find_free_port

        self.env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "MONGODB_URI": f"mongodb://127.0.0.1:{find_free_port()}",
            "LLM_BASE_URL": f"http://127.0.0.1:{find_free_port()}/v1",
            "INFERENCE_PORT": str(find_free_port()),
            "OPIK_TRACK_DISABLE": "true",
            "HF_HUB_OFFLINE": "1",
        }
        self.url = f"http://127.0.0.1:{self.env['INFERENCE_PORT']}"
        self.api: subprocess.Popen | None = None

    def settings(self):
        from llm_engineering.settings import Settings

        keys = ("DATA_DIR", "MONGODB_URI", "LLM_BASE_URL", "INFERENCE_PORT")
        return Settings(**{k.lower(): self.env[k] for k in keys})

    def run(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=self.env, check=True)

    def up(self) -> None:
        from llm_engineering.infrastructure.ml.inference_engine import start_llm_server
        from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model

        self.run("tools.data_warehouse", "import", "--data-dir", "data/sample")
        self.run("tools.features", "--config", "configs/feature_engineering.yaml", "--no-zenml")
        prepare_packaged_model(self.settings())
        start_llm_server(self.settings())
        self.start_api()

    def start_api(self) -> None:
        import httpx

        log = open(Path(self.env["DATA_DIR"]) / "api.log", "ab")  # noqa: SIM115 - kept open while the API runs
        self.api = subprocess.Popen([sys.executable, "-m", "tools.serve"], cwd=ROOT, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError(f"the API did not start; see {log.name}")

    def warehouse(self):
        from llm_engineering.infrastructure.mongo.server import embedded_server

        return embedded_server(self.settings())

    def llm(self):
        from llm_engineering.infrastructure.ml.inference_engine import llm_server_service

        return llm_server_service(self.settings())

    def down(self) -> None:
        if self.api is not None:
            self.api.terminate()
            self.api.wait(timeout=30)
        self.llm().stop()
        self.warehouse().stop()


async def call(client, path: str, question: str, stream: bool = False) -> dict:
    started = time.monotonic()
    if path == "/rag":
        response = await client.post(path, json={"query": question})
        body = response.json()
        return {"status": response.status_code, "s": time.monotonic() - started, "degraded": body.get("degraded"),
                "retry_after": response.headers.get("retry-after"), "timings": body.get("timings_ms")}  # fmt: skip
    if path == "/search":
        response = await client.post(path, json={"query": question, "k": 5})
        return {"status": response.status_code, "s": time.monotonic() - started}
    body = {"messages": [{"role": "user", "content": question}], "stream": True, "sources_footer": False}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return {"status": response.status_code, "s": time.monotonic() - started,
                    "retry_after": response.headers.get("retry-after")}  # fmt: skip
        text = ""
        async for line in response.aiter_lines():
            text += line
        return {"status": 200, "s": time.monotonic() - started, "stream_error": '"error"' in text,
                "degraded": '"degraded": true' in text or '"degraded":true' in text}  # fmt: skip


async def burst(url: str, path: str, concurrency: int, requests: int) -> dict:
    import httpx

    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def one(i: int) -> dict:
            async with semaphore:
                return await call(client, path, QUESTIONS[i % len(QUESTIONS)], stream=path != "/rag")

        started = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(requests)))
    return summary(list(results), time.monotonic() - started)


async def soak(url: str, clients: int, seconds: float) -> dict:
    """Clients that honour Retry-After, looping POST /rag until the time is up."""
    import httpx

    results: list[dict] = []
    stop_at = time.monotonic() + seconds
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def loop(i: int) -> None:
            n = i
            while time.monotonic() < stop_at:
                result = await call(client, "/rag", QUESTIONS[n % len(QUESTIONS)])
                results.append(result)
                n += clients
                if result["status"] == 503:
                    wait = float(result.get("retry_after") or 1) * (1 + rng.random() * 0.5)
                    await asyncio.sleep(min(wait, max(0.0, stop_at - time.monotonic())))

        started = time.monotonic()
        await asyncio.gather(*(loop(i) for i in range(clients)))
    out = summary(results, time.monotonic() - started)
    out["acceptance"] = {"answers>=12": out["answers"] >= 12, "no_504": "504" not in out["statuses"],
                         "only_503_as_5xx": all(s == "503" or int(s) < 500 for s in out["statuses"])}  # fmt: skip
    return out


async def until_answer(url: str, limit_s: float = 300) -> float | None:
    import httpx

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() - started < limit_s:
            response = await client.post("/rag", json={"query": QUESTIONS[0]})
            if response.status_code == 200:
                return round(time.monotonic() - started, 1)
            await asyncio.sleep(1)
    return None


async def disconnects(url: str, clients: int = 8) -> dict:
    import httpx

    body = {"messages": [{"role": "user", "content": QUESTIONS[1]}], "stream": True}

    async def leave() -> None:
        try:
            async with (
                httpx.AsyncClient(base_url=url, timeout=0.5) as client,
                client.stream("POST", "/v1/chat/completions", json=body) as response,
            ):
                await response.aread()
        except httpx.HTTPError:
            pass

    await asyncio.gather(*(leave() for _ in range(clients)))
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        deadline = time.monotonic() + 120
        active = None
        while time.monotonic() < deadline:
            active = (await client.get("/health")).json()["admission"]["active"]
            if active == 0:
                break
            await asyncio.sleep(0.5)
        after = await client.post("/rag", json={"query": QUESTIONS[2]})
    return {"clients_left_early": clients, "slots_in_use_after": active, "next_request_status": after.status_code}


async def faults(stack: Stack) -> dict:
    import httpx

    out: dict = {"early_disconnects": await disconnects(stack.url)}
    stack.llm().stop()
    async with httpx.AsyncClient(base_url=stack.url, timeout=120) as client:
        results = [await call(client, "/rag", q) for q in QUESTIONS[:5]]
    out["vllm_killed"] = {**summary(results, 1.0), "max_s": round(max(r["s"] for r in results), 2),
                          "retry_after": sorted({r.get("retry_after") for r in results} - {None})}  # fmt: skip
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server

    restarted = time.monotonic()
    start_llm_server(stack.settings())
    out["vllm_restarted"] = {"server_ready_s": round(time.monotonic() - restarted, 1),
                             "first_answer_after_ready_s": await until_answer(stack.url)}  # fmt: skip
    warehouse = stack.warehouse()
    warehouse.stop()
    await asyncio.sleep(61)  # the author cache (60 s) expires: requests must now reach the dead warehouse
    async with httpx.AsyncClient(base_url=stack.url, timeout=120) as client:
        results = [await call(client, path, QUESTIONS[3]) for path in ("/rag", "/search")]
        ready = (await client.get("/ready")).json()
    out["warehouse_stopped"] = {"statuses": [r["status"] for r in results], "ready_not_ready": ready["not_ready"]}
    warehouse.start()
    out["warehouse_restarted"] = {"first_answer_s": await until_answer(stack.url)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="latency,burst,soak,faults")
    parser.add_argument("--latency-requests", type=int, default=12)
    parser.add_argument("--levels", type=int, nargs="+", default=[4, 16, 32])
    parser.add_argument("--soak-s", type=float, default=180)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "api_load.json")
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))

    from llm_engineering.infrastructure.ml.inference_engine import cpu_profile, engine_tuning

    data_dir = Path(tempfile.mkdtemp(prefix="llm-twin-load-"))
    stack = Stack(data_dir)
    tuning = engine_tuning(stack.settings())
    profile = cpu_profile()
    report: dict = {
        "benchmark": "api_load",
        "cpu": {
            "model": profile.model,
            "isa": profile.isa,
            "bf16_units": profile.has_bf16_units,
            "cores": len(profile.cores),
        },  # fmt: skip
        "llm": {"dtype": tuning.dtype, "threads": tuning.threads, "tuning": tuning.reasons},
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"CPU {profile.model} ({profile.isa}); LLM {tuning.dtype}, {tuning.threads} threads; data in {data_dir}")
    try:
        stack.up()
        asyncio.run(burst(stack.url, "/rag", 1, 1))  # warm-up (grammars, caches), not measured
        if "latency" in scenarios:
            rag = asyncio.run(burst_detail(stack.url, args.latency_requests))
            search = asyncio.run(burst(stack.url, "/search", 1, 50))
            report["latency"] = {"rag_c1": rag, "search_c1": search}
            print(json.dumps(report["latency"], indent=1))
        if "burst" in scenarios:
            report["burst"] = {}
            for path in ("/rag", "/v1/chat/completions", "/search"):
                for level in args.levels:
                    key = f"{path} c={level}"
                    report["burst"][key] = asyncio.run(burst(stack.url, path, level, 2 * level))
                    print(key, report["burst"][key])
        if "soak" in scenarios:
            report["soak"] = asyncio.run(soak(stack.url, 32, args.soak_s))
            print("soak", report["soak"])
        if "faults" in scenarios:
            report["faults"] = asyncio.run(faults(stack))
            print("faults", report["faults"])
    finally:
        stack.down()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


async def burst_detail(url: str, requests: int) -> dict:
    """One /rag at a time, with the per-stage breakdown the service reports."""
    import httpx

    results = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        started = time.monotonic()
        for i in range(requests):
            results.append(await call(client, "/rag", QUESTIONS[i % len(QUESTIONS)]))
        wall = time.monotonic() - started
    out = summary(results, wall)
    timed = [r["timings"] for r in results if r["status"] == 200 and r.get("timings")]
    stages = sorted({stage for t in timed for stage in t})
    out["stages_ms"] = {s: {"p50": percentile([t[s] for t in timed if s in t], 50),
                            "p95": percentile([t[s] for t in timed if s in t], 95)} for s in stages}  # fmt: skip
    return out


if __name__ == "__main__":
    main()
