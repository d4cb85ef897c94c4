"""The twin refresh under load (issue #22): a first refresh on half the corpus, the twin served, then new writing
arrives and a second refresh runs while clients keep asking `POST /rag`.

    nice -n 5 .venv/bin/python bench/bench_refresh.py [--hold-out N] [--clients 4] [--max-steps N]

1. a fresh DATA_DIR and a real MongoDB-wire warehouse (nx-27017); the sample corpus minus its `--hold-out` newest
   articles (default: half of them) is imported (half A);
2. `poe run-twin-refresh` #1: everything is new; its outcome, wall time split by step (the ZenML run's steps) and
   LLM calls are recorded;
3. the production twin is served (`poe run-llm-server` with LLM_MODEL_ID=llm-twin:production, then
   `poe run-inference-ml-service`), and `--clients` threads loop `POST /rag`;
4. the held-out articles are imported (half B) and `poe run-twin-refresh` #2 runs while the clients ask;
5. refresh #2 again from the same starting point in the other training mode (`--compare-mode`, default
   continue: from the production twin on the new documents plus a replay share), without clients or switch;
6. recorded: refresh #2's wall time by step, the LLM generations and embeddings it made against what a
   from-scratch run would make (its cache hits; the chunks of unchanged documents), the gate's verdict and
   numbers (the candidate's perplexity on the new writing's held-out answers against the production twin's:
   `voice.new_writing_perplexity`, with the sticky split holding out a share of half B), and what the clients saw:
   requests, failures other than 503 + Retry-After, and the model versions that answered, in order.

Results: bench/results/twin_refresh.json (machine and CPU flags included). Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, nx_warehouse  # noqa: E402

QUESTIONS = [
    "Why should documents be chunked by tokens rather than by characters?",
    "What is reciprocal rank fusion?",
    "How does continuous batching help an inference server?",
]


def split_corpus(sample: Path, out: Path, hold_out: int | None) -> tuple[Path, Path, list[str]]:
    """Half A (everything but the last `hold_out` articles) and half B (those articles), each an import folder."""
    half_a, half_b = out / "half_a", out / "half_b"
    for folder in (half_a, half_b):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample / "UserDocument.json", folder / "UserDocument.json")
    for name in ("PostDocument.json", "RepositoryDocument.json"):
        shutil.copy(sample / name, half_a / name)
    articles = json.loads((sample / "ArticleDocument.json").read_text(encoding="utf-8"))
    hold_out = hold_out or len(articles) // 2
    kept, held = articles[:-hold_out], articles[-hold_out:]
    (half_a / "ArticleDocument.json").write_text(json.dumps(kept), encoding="utf-8")
    (half_b / "ArticleDocument.json").write_text(json.dumps(held), encoding="utf-8")
    return half_a, half_b, [a["link"] for a in held]


def run_tool(env: dict, *args: str, log: Path, timeout: float = 3600) -> tuple[int, float]:
    started = time.monotonic()
    with log.open("w") as handle:
        code = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=handle,
                              stderr=subprocess.STDOUT, timeout=timeout).returncode  # fmt: skip
    return code, round(time.monotonic() - started, 1)


def last_refresh(env: dict) -> dict:
    """The ZenML run of the last refresh: each step's seconds (in run order)."""
    code = (
        "import json; from tools._cli import bootstrap; bootstrap(); from zenml.client import Client; "
        "run = Client().get_pipeline('twin_refresh').last_run; "
        "steps = sorted(run.steps.values(), key=lambda s: s.start_time); "
        "print(json.dumps({'run': run.name, 'status': str(run.status), 'steps_s': {s.name: round(("
        "s.end_time - s.start_time).total_seconds(), 1) for s in steps if s.end_time}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-500:]}


def ledger(data_dir: Path) -> list[dict]:
    path = data_dir / "refresh" / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


class Clients:
    """`n` threads looping POST /rag; every response's status, Retry-After and answering model, in order."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n
        self.results: list[dict] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(n)]

    def _loop(self, index: int) -> None:
        import httpx

        with httpx.Client(timeout=300) as client:
            turn = index
            while not self._stop.is_set():
                question = QUESTIONS[turn % len(QUESTIONS)]
                turn += 1
                started = time.time()
                try:
                    response = client.post(f"{self.url}/rag", json={"query": question})
                    body = (
                        response.json()
                        if response.headers.get("content-type", "").startswith("application/json")
                        else {}
                    )
                    self.results.append({"at": started, "status": response.status_code,
                                         "retry_after": response.headers.get("retry-after"),
                                         "model": body.get("model")})  # fmt: skip
                except Exception as exc:  # a dropped connection is a failure the bench must count
                    self.results.append({"at": started, "status": None, "error": f"{type(exc).__name__}: {exc}"})
                    time.sleep(0.5)

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=320)

    def summary(self) -> dict:
        statuses: dict[str, int] = {}
        for r in self.results:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        failed = [r for r in self.results if r["status"] != 200 and not (r["status"] == 503 and r.get("retry_after"))]
        models: list[str] = []
        for r in sorted(self.results, key=lambda r: r["at"]):
            if r.get("model") and (not models or models[-1] != r["model"]):
                models.append(r["model"])
        return {"clients": self.n, "requests": len(self.results), "statuses": statuses, "failed": len(failed),
                "failures": failed[:10], "models_in_order": models}  # fmt: skip


def wait_ready(url: str, timeout_s: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"the RAG API at {url} was not ready in {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hold-out", type=int, default=None,
                        help="articles that arrive as new writing (half B; default: half of the articles)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=None, help="cap SFT and DPO steps (default: the config's)")
    parser.add_argument("--compare-mode", default="continue", help="also run refresh #2 in this training mode "
                        "from the same starting point (empty: skip)")  # fmt: skip
    parser.add_argument("--evaluation-config", type=Path, default=None,
                        help="the refreshes' evaluation config (default: the one configs/twin_refresh.yaml names; "
                        "configs/evaluating_demo.yaml is the main job's lighter one)")  # fmt: skip
    parser.add_argument("--refresh-timeout", type=float, default=3 * 3600,
                        help="seconds one refresh may take (refresh #2 under load took over an hour on a 2-core "
                        "AVX2-only box)")  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="re-use --work's warehouse and refresh #1")
    parser.add_argument("--serve-refused", action="store_true",
                        help="when the gate refuses refresh #1's candidate, promote it by hand (recorded as such) "
                        "so that there is a twin to serve and switch from")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("/tmp/llm-twin-refresh-bench"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "twin_refresh.json")
    args = parser.parse_args()

    from llm_engineering.infrastructure.local_services import find_free_port

    state_file = args.work / "bench_state.json"
    state = json.loads(state_file.read_text()) if args.resume and state_file.is_file() else None
    if state is None:
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        state = {"database": f"refresh_{uuid.uuid4().hex[:8]}"}
        state_file.write_text(json.dumps(state))
    half_a, half_b, new_links = split_corpus(ROOT / "data" / "sample", args.work, args.hold_out)
    data_dir = args.work / "data"
    api_port, llm_port = find_free_port(), find_free_port()
    from llm_engineering.infrastructure.ml.inference_engine import engine_tuning
    from llm_engineering.settings import Settings

    tuning = engine_tuning(Settings())  # what every engine of the run is started with (dtype, threads and why)
    results: dict = {"benchmark": "twin_refresh", "machine": machine(torch=False), "hold_out": new_links,
                     "engine": {"name": "vllm", "dtype": tuning.dtype, "reasons": tuning.reasons,
                                "extra_args": "--enforce-eager"},
                     "command": "python bench/bench_refresh.py " + " ".join(sys.argv[1:])}  # fmt: skip
    refresh_args = ["tools.twin_refresh", "--config", str(_refresh_config(args))]
    if args.max_steps:
        refresh_args += ["--max-steps", str(args.max_steps)]
    with nx_warehouse(args.work / "warehouse") as (mongo_uri, _):
        env = {**os.environ, "DATA_DIR": str(data_dir), "MONGODB_URI": mongo_uri, "MONGODB_EMBEDDED": "false",
               "MONGODB_DATABASE": state["database"], "OPIK_URL": "",
               "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1", "LLM_MODEL_ID": "llm-twin:production",
               "INFERENCE_HOST": "127.0.0.1", "INFERENCE_PORT": str(api_port),
               # Two cores run the served engine under load, training and a starting engine at once: every engine
               # runs eager (no compile warm-up) so that a second one starts in minutes, not tens of minutes.
               "LLM_SERVER_EXTRA_ARGS": "--enforce-eager"}  # fmt: skip
        if "refresh_1" not in state:  # --resume: refresh #1 of an earlier run of this bench is re-used
            code, seconds = run_tool(env, "tools.data_warehouse", "import", "--data-dir", str(half_a),
                                     log=args.work / "import_a.log")  # fmt: skip
            assert code == 0, (args.work / "import_a.log").read_text()[-2000:]
            code, seconds = run_tool(env, *refresh_args, log=args.work / "refresh_1.log", timeout=args.refresh_timeout)
            first = ledger(data_dir)[-1] if ledger(data_dir) else {}
            state["refresh_1"] = {"exit_code": code, "wall_s": seconds, **last_refresh(env), "ledger": first}
            state_file.write_text(json.dumps(state, default=str))
        results["refresh_1"] = state["refresh_1"]
        first = state["refresh_1"]["ledger"]
        print(f"refresh 1: {state['refresh_1']['wall_s']} s, outcome {first.get('outcome')}", flush=True)
        if first.get("production_after") is None:
            if not (args.serve_refused and first.get("candidate")):
                results["stopped"] = "refresh 1 promoted nothing: no production twin to serve (--serve-refused)"
                return _write(args.output, results)
            # The gate refused refresh #1's candidate; the bench still needs a twin in production to switch from.
            from llm_engineering.infrastructure.registry import promote, read_pointer

            version = first["candidate"].split(":")[1]
            if read_pointer(data_dir / "models", "llm-twin", "production") != version:
                promote(data_dir / "models", version, actor="bench/bench_refresh.py --serve-refused",
                        reason="refresh 1's candidate was refused by the gate; promoted by hand to have a twin "
                        "in production for the bench")  # fmt: skip
            first = {**first, "production_after": version}
            results["refresh_1_promoted_by_hand"] = version

        code, _ = run_tool(env, "tools.llm_server", "up", log=args.work / "llm_up.log", timeout=900)
        assert code == 0, (args.work / "llm_up.log").read_text()[-2000:]
        api_log = (args.work / "api.log").open("w")
        api = subprocess.Popen([sys.executable, "-m", "tools.serve"], cwd=ROOT, env=env, stdout=api_log,
                               stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{api_port}"
        try:
            wait_ready(url)
            code, _ = run_tool(env, "tools.data_warehouse", "import", "--data-dir", str(half_b),
                               log=args.work / "import_b.log")  # fmt: skip
            assert code == 0, (args.work / "import_b.log").read_text()[-2000:]
            baseline = {"last": (data_dir / "refresh" / "last.json").read_text(encoding="utf-8"),
                        "production": first["production_after"]}  # fmt: skip
            with Clients(url, args.clients) as clients:
                time.sleep(20)  # the clients run against the old version first
                code, seconds = run_tool(
                    env, *refresh_args, log=args.work / "refresh_2.log", timeout=args.refresh_timeout
                )
                time.sleep(20)  # and against the new one after the switch
            second = ledger(data_dir)[-1]
            results["refresh_2"] = {"exit_code": code, "wall_s": seconds, **last_refresh(env), "ledger": second}
            results["clients"] = clients.summary()
            print(f"refresh 2: exit {code}, {seconds} s, outcome {second.get('outcome')}", flush=True)
        finally:
            api.terminate()
            api.wait(timeout=60)
            run_tool(env, "tools.llm_server", "down", log=args.work / "llm_down.log", timeout=300)
        results["saved_vs_from_scratch"] = _savings(second, data_dir)
        results["gate_2"] = _gate_numbers(second)
        if args.compare_mode:
            results["refresh_2_other_mode"] = _other_mode(env, args, data_dir, baseline, refresh_args)
    _write(args.output, results)


def _other_mode(env: dict, args, data_dir: Path, baseline: dict, refresh_args: list[str]) -> dict:
    """Refresh #2 again from the same starting point in the other training mode (no clients, no switch): the
    ledger's baseline and the production pointer as they were before refresh #2; the dataset comes from the cache."""
    from llm_engineering.infrastructure.registry import write_pointer

    (data_dir / "refresh" / "last.json").write_text(baseline["last"], encoding="utf-8")
    write_pointer(data_dir / "models", "llm-twin", baseline["production"], "production")
    path = _refresh_config(args, mode=args.compare_mode)
    other = [*refresh_args[:2], str(path), *refresh_args[3:], "--no-switch"]
    code, seconds = run_tool(env, *other, log=args.work / "refresh_2_other.log", timeout=args.refresh_timeout)
    entry = ledger(data_dir)[-1]
    print(f"refresh 2 ({args.compare_mode}): exit {code}, {seconds} s, outcome {entry.get('outcome')}", flush=True)
    return {"mode": args.compare_mode, "exit_code": code, "wall_s": seconds, **last_refresh(env), "ledger": entry,
            "gate": _gate_numbers(entry)}  # fmt: skip


def _refresh_config(args, mode: str | None = None) -> Path:
    """configs/twin_refresh.yaml, or a copy in --work with this bench's evaluation config and training mode."""
    import yaml

    default = ROOT / "configs" / "twin_refresh.yaml"
    if args.evaluation_config is None and mode is None:
        return default
    config = yaml.safe_load(default.read_text(encoding="utf-8"))
    if args.evaluation_config is not None:
        config["parameters"]["evaluation_config"] = str(args.evaluation_config.resolve())
    if mode is not None:
        config["parameters"]["training"]["mode"] = mode
    path = args.work / f"twin_refresh_{mode or 'bench'}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _savings(entry: dict, data_dir: Path) -> dict:
    """What refresh #2 did not redo: generations from the cache; embeddings of unchanged documents' chunks."""
    calls, hits = sum(entry.get("dataset_llm_calls", {}).values()), sum(entry.get("dataset_cache_hits", {}).values())
    return {"llm_generations_made": calls, "llm_generations_reused": hits,
            "documents_new": entry.get("changes", {}).get("new"),
            "documents_unchanged": entry.get("changes", {}).get("unchanged")}  # fmt: skip


def _gate_numbers(entry: dict) -> dict:
    decision = entry.get("decision") or {}
    return {"promote": decision.get("promote"), "deciding_rule": decision.get("deciding_rule"),
            "rules": decision.get("rules")}  # fmt: skip


def _write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
