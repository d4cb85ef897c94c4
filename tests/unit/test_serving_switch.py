"""The hot switch without vLLM (docs/serving.md): the serving state file, the API's follower and dependency swap,
the switch choreography between two real engine processes (a stand-in HTTP engine with vLLM's /v1/models and
/metrics, started through the same LocalService code as vLLM), its failure path, and the rollback's registry side.
The real-vLLM version is tests/integration/llm/test_hot_switch.py (slow)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from llm_engineering.domain.errors import ConfigurationError, ServiceUnavailableError
from llm_engineering.infrastructure.local_services import find_free_port, group_members
from llm_engineering.infrastructure.serving import ActiveServing, active_serving, serving_state_path, switch_serving
from llm_engineering.infrastructure.serving.follower import ServingFollower
from llm_engineering.infrastructure.serving.rollback import previous_production, rollback_production
from llm_engineering.infrastructure.serving.state import write_serving_state
from llm_engineering.infrastructure.serving.switch import parse_engine_load, pin_model_spec
from llm_engineering.settings import Settings


# --- fakes -----------------------------------------------------------------------------------------------------
@dataclass
class FakeLLM:
    model: str
    closed: int = 0

    async def aclose(self) -> None:
        self.closed += 1


@dataclass
class FakeConfig:
    model_label: str


@dataclass
class FakeRAG:
    """What the routes under test read of a RAGService: its config's label, its LLM, readiness and closing."""

    label: str
    llm: FakeLLM = field(init=False)
    config: FakeConfig = field(init=False)
    fully_closed: int = 0

    def __post_init__(self) -> None:
        self.llm = FakeLLM(self.label)
        self.config = FakeConfig(self.label)

    async def check_ready(self) -> dict:
        return {"llm": {"ok": True, "detail": "ok"}}

    async def aclose(self) -> None:
        self.fully_closed += 1
        await self.llm.aclose()


class FakeProvider:
    """The container's face to the API: rag_service, search_service and rag_service_for(base_url, model_spec)."""

    def __init__(self) -> None:
        self.rag_service = FakeRAG("default")
        self.search_service = None
        self.built: list[tuple[str, str]] = []

    def rag_service_for(self, base_url: str, model_spec: str) -> FakeRAG:
        self.built.append((base_url, model_spec))
        return FakeRAG(model_spec)


def _settings(tmp_path: Path, **overrides) -> Settings:
    return Settings(data_dir=tmp_path / "data", opik_url=None, **overrides)


def _state(spec: str, port: int = 9) -> ActiveServing:
    return ActiveServing(
        base_url=f"http://127.0.0.1:{port}/v1", model_spec=spec, version=spec.rsplit(":", 1)[-1],
        service_name=f"vllm-server-{spec}", port=port,
    )  # fmt: skip


# --- the state file --------------------------------------------------------------------------------------------
def test_state_file_round_trip_is_atomic_and_absent_means_none(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert active_serving(settings) is None
    written = write_serving_state(settings, _state("llm-twin:v0002"))
    assert written.since  # filled in
    path = serving_state_path(settings)
    assert path == settings.data_dir / "serving" / "active.json"
    assert active_serving(settings) == written
    assert json.loads(path.read_text())["model_spec"] == "llm-twin:v0002"
    write_serving_state(settings, _state("llm-twin:v0003"))
    assert active_serving(settings).model_spec == "llm-twin:v0003"
    assert [p.name for p in path.parent.iterdir()] == ["active.json"]  # no temp file left behind
    path.write_text("{half a file")
    assert active_serving(settings) is None  # a broken file reads as absent, never raises


# --- the API's follower ----------------------------------------------------------------------------------------
def test_follower_swaps_atomically_and_closes_the_old_client_after_its_last_request(tmp_path: Path) -> None:
    provider = FakeProvider()
    path = tmp_path / "active.json"
    settings = _settings(tmp_path)
    follower = ServingFollower(
        path, provider.rag_service, provider.rag_service_for, default_key=("http://127.0.0.1:8000/v1", "llm-twin"),
        check_interval_s=0.0,
    )  # fmt: skip

    async def scenario() -> None:
        async with follower.lease() as first:
            assert first.label == "default"
            write_serving_state(settings.model_copy(update={"data_dir": tmp_path / "x"}), _state("llm-twin:v0002"))
            os.replace(tmp_path / "x" / "serving" / "active.json", path)
            async with follower.lease() as second:
                assert second.label == "llm-twin:v0002"  # new requests: the new engine
                assert follower.describe()["draining"] == {"default": 1}
                assert first.llm.closed == 0  # the request that holds it is still running
            assert first.llm.closed == 0
        assert first.llm.closed == 1  # closed when its last request ended, not before
        assert first.fully_closed == 0  # only the LLM client: retriever and stores are shared
        assert follower.describe() == {
            "model_spec": "llm-twin:v0002", "model": "llm-twin:v0002", "draining": {}, "swaps": 1,
        }  # fmt: skip
        # The same file again: no rebuild; a file naming the configured engine: back to the default service.
        follower.refresh(force=True)
        assert provider.built == [("http://127.0.0.1:9/v1", "llm-twin:v0002")]
        path.write_text(json.dumps(_state("llm-twin").model_dump() | {"base_url": "http://127.0.0.1:8000/v1"}))
        async with follower.lease() as third:
            assert third is provider.rag_service
        path.unlink()
        async with follower.lease() as fourth:
            assert fourth is provider.rag_service
        await follower.aclose(close_current=True)
        assert provider.rag_service.fully_closed == 1

    asyncio.run(scenario())


def test_follower_keeps_answering_when_the_new_service_cannot_be_built(tmp_path: Path) -> None:
    path = tmp_path / "active.json"
    default = FakeRAG("default")

    def broken(base_url: str, model_spec: str):
        raise ConfigurationError("model 'llm-twin:v0009' does not exist")

    follower = ServingFollower(path, default, broken, default_key=("u", "m"), check_interval_s=0.0)
    path.write_text(_state("llm-twin:v0009").model_dump_json())
    follower.refresh(force=True)
    assert follower.current is default and follower.swaps == 0


def test_a_given_service_is_never_swapped(tmp_path: Path) -> None:
    path = tmp_path / "active.json"
    path.write_text(_state("llm-twin:v0002").model_dump_json())
    default = FakeRAG("given")
    follower = ServingFollower(path, default, None, default_key=("u", "m"), check_interval_s=0.0)
    follower.refresh(force=True)
    assert follower.current is default


def test_the_app_follows_the_state_file_on_ready_and_models(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from llm_engineering.infrastructure.api.app import create_app

    settings = _settings(tmp_path)
    provider = FakeProvider()
    with TestClient(create_app(settings, services=provider), base_url="http://127.0.0.1") as client:
        body = client.get("/ready").json()
        assert body["model"] == "default" and body["serving"]["model_spec"] == settings.llm_model_id
        assert client.get("/v1/models").json()["data"][0]["root"] == "default"
        write_serving_state(settings, _state("llm-twin:v0004"))
        time.sleep(0.6)  # the follower stats the file at most every 0.5 s
        body = client.get("/ready").json()
        assert body["model"] == "llm-twin:v0004" and body["serving"]["model_spec"] == "llm-twin:v0004"
        assert "127.0.0.1" not in json.dumps(body)  # /ready never says where the engine lives
        models = client.get("/v1/models").json()["data"]
        assert models[0]["id"] == "llm-twin" and models[0]["root"] == "llm-twin:v0004"
        swapped = client.app.state.serving.current
    assert swapped.fully_closed == 1  # the app's current service is closed at shutdown
    assert provider.rag_service.llm.closed >= 1  # the replaced default's client too


# --- switch_serving between two real (stand-in) engine processes ------------------------------------------------
FAKE_ENGINE = '''#!{python}
"""Stands in for `python -m vllm.entrypoints.openai.api_server ...`: /v1/models and /metrics like vLLM."""
import json, os, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
args = sys.argv[1:]
if os.environ.get("FAKE_ENGINE_FAIL"):
    print("engine failed to load the model", flush=True)
    sys.exit(3)
port, host = int(args[args.index("--port") + 1]), args[args.index("--host") + 1]
start = args.index("--served-model-name") + 1
names = []
while start < len(args) and not args[start].startswith("--"):
    names.append(args[start]); start += 1
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/v1/models":
            body = json.dumps({{"object": "list", "data": [{{"id": n}} for n in names]}})
        elif self.path == "/metrics":
            body = "".join(f'vllm:num_requests_{{k}}{{{{model_name="x"}}}} 0.0\\n' for k in ("running", "waiting"))
        else:
            self.send_response(404); self.end_headers(); return
        data = body.encode()
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
ThreadingHTTPServer((host, port), Handler).serve_forever()
'''


def _register(settings: Settings, count: int) -> list[str]:
    from llm_engineering.infrastructure.registry import register_version

    versions = []
    for i in range(count):
        twin = settings.data_dir / "run" / f"merged-{i}"
        twin.mkdir(parents=True)
        (twin / "config.json").write_text("{}")
        versions.append(register_version(settings.models_dir, twin_dir=twin, sft_dir=None, manifest={}).version)
    return versions


@pytest.fixture
def engine_settings(tmp_path: Path) -> Settings:
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_ENGINE.format(python=sys.executable))
    fake.chmod(0o755)
    settings = _settings(
        tmp_path,
        vllm_python=fake,
        llm_model_id="llm-twin:v0001",
        llm_base_url=f"http://127.0.0.1:{find_free_port()}/v1",
        llm_server_startup_timeout_s=20,
        inference_port=find_free_port(),  # no API there
    )
    _register(settings, 2)
    return settings


def test_pin_model_spec_names_the_version(engine_settings: Settings) -> None:
    from llm_engineering.infrastructure.registry import promote

    promote(engine_settings.models_dir, "v0002")
    assert pin_model_spec(engine_settings, "llm-twin:production") == ("llm-twin:v0002", "v0002")
    assert pin_model_spec(engine_settings, "llm-twin:1") == ("llm-twin:v0001", "v0001")
    with pytest.raises(ConfigurationError, match="does not exist"):
        pin_model_spec(engine_settings, "llm-twin:v0007")


def test_switch_with_nothing_served_only_records_and_the_next_start_serves_it(engine_settings: Settings) -> None:
    from llm_engineering.infrastructure.ml.inference_engine import endpoint_model_names, start_llm_server
    from llm_engineering.infrastructure.ml.inference_engine import stop_llm_server as stop

    result = switch_serving(engine_settings, "llm-twin:v0002")
    assert result.started is False and result.previous is None
    state = active_serving(engine_settings)
    assert state.model_spec == "llm-twin:v0002" and state.base_url == engine_settings.llm_base_url
    try:
        assert start_llm_server(engine_settings) is True
        # served under the pinned spec first, and the configured id for clients that use it
        assert endpoint_model_names(engine_settings) == ["llm-twin:v0002", "llm-twin:v0001"]
    finally:
        assert stop(engine_settings) is True
    assert active_serving(engine_settings).model_spec == "llm-twin:v0002"  # kept for the next start


def test_switch_starts_a_second_engine_and_stops_the_old_group(engine_settings: Settings) -> None:
    from llm_engineering.infrastructure.ml.inference_engine import (
        endpoint_model_names,
        llm_server_service,
        llm_server_status,
        start_llm_server,
        stop_llm_server,
    )
    from llm_engineering.infrastructure.ml.inference_engine import (
        engine_settings as at,
    )

    assert start_llm_server(engine_settings) is True
    old = llm_server_service(engine_settings)
    old_pgid = old.record()["pgid"]
    try:
        result = switch_serving(engine_settings, "llm-twin:v0002", drain_timeout_s=10)
        assert result.started and result.stopped_previous and result.drained is True
        assert result.api_followed is None  # no API answers at INFERENCE_PORT
        assert result.service_name == "vllm-server-v0002" and result.previous.model_spec == "llm-twin:v0001"
        assert result.port != old.port
        assert not group_members(old_pgid)  # the old engine's whole process group is gone
        new = at(engine_settings, port=result.port)
        assert endpoint_model_names(new)[0] == "llm-twin:v0002"
        status = llm_server_status(engine_settings)
        assert status["active"]["model_spec"] == "llm-twin:v0002" and status["active_ready"] is True
        assert status["engines"]["vllm-server-v0002"]["running"] is True
        # Switching to what answers is a no-op; a start while the active engine runs starts nothing.
        assert switch_serving(engine_settings, "llm-twin:2").started is False
        assert start_llm_server(engine_settings) is False
    finally:
        assert stop_llm_server(engine_settings) is True  # the active engine too
    assert not llm_server_status(engine_settings)["active_ready"]
    assert all(not e["running"] for e in llm_server_status(engine_settings)["engines"].values())


def test_a_new_engine_that_fails_leaves_the_old_one_and_the_state_untouched(
    engine_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_engineering.infrastructure.ml.inference_engine import (
        llm_server_service,
        models_endpoint_ready,
        start_llm_server,
        stop_llm_server,
    )

    assert start_llm_server(engine_settings) is True
    try:
        monkeypatch.setenv("FAKE_ENGINE_FAIL", "1")
        with pytest.raises(ServiceUnavailableError, match=r"vllm-server-v0002\.log") as failure:
            switch_serving(engine_settings, "llm-twin:v0002")
        assert "llm-twin:v0001 keeps answering" in str(failure.value)
        assert active_serving(engine_settings) is None
        assert models_endpoint_ready(engine_settings)
        new = llm_server_service(engine_settings, model_spec="llm-twin:v0002", name="vllm-server-v0002")
        assert new.managed_pid() is None and not new.orphans()  # nothing half-started left behind
    finally:
        stop_llm_server(engine_settings)


def test_switch_refuses_a_remote_endpoint(tmp_path: Path) -> None:
    settings = _settings(tmp_path, llm_base_url="https://llm.example.com/v1")
    with pytest.raises(ConfigurationError, match="remote"):
        switch_serving(settings, "llm-twin:v0001")


def test_switch_waits_for_the_api_to_follow(engine_settings: Settings) -> None:
    """The real app (uvicorn, fake RAG services) follows the state file before the old engine stops."""
    from llm_engineering.infrastructure.api.app import create_app
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server, stop_llm_server
    from tests.integration.llm.fixtures_llm import ServedApp

    provider = FakeProvider()
    assert start_llm_server(engine_settings) is True
    served = ServedApp(engine_settings, create_app(engine_settings, services=provider)).start()
    try:
        settings = engine_settings.model_copy(update={"inference_port": served.port})
        result = switch_serving(settings, "llm-twin:v0002", api_timeout_s=10, drain_timeout_s=10)
        assert result.api_followed is True and result.stopped_previous
        body = httpx.get(f"{served.url}/ready").json()
        assert body["model"] == "llm-twin:v0002" and body["serving"]["draining"] == {}
        assert provider.built == [(result.base_url, "llm-twin:v0002")]
    finally:
        served.stop()
        stop_llm_server(engine_settings)


def test_engine_load_parses_vllm_metrics() -> None:
    page = (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        'vllm:num_requests_running{engine="0",model_name="llm-twin:v0001"} 2.0\n'
        'vllm:num_requests_waiting{engine="0",model_name="llm-twin:v0001"} 1.0\n'
        'vllm:num_requests_waiting_by_reason{engine="0",reason="capacity"} 5.0\n'
    )
    assert parse_engine_load(page) == 3.0
    assert parse_engine_load("other_metric 1\n") is None


# --- rollback --------------------------------------------------------------------------------------------------
def test_previous_production_skips_rollbacks() -> None:
    history = [
        {"action": "promote", "stage": "production", "version": "v0001", "previous": None},
        {"action": "promote", "stage": "production", "version": "v0002", "previous": "v0001"},
        {"action": "promote", "stage": "production", "version": "v0003", "previous": "v0002"},
        {"action": "rollback", "stage": "production", "version": "v0002", "previous": "v0003"},
    ]
    assert previous_production(history, "v0003") == "v0002"
    assert previous_production(history, "v0002") == "v0001"  # a second rollback goes one step further back
    assert previous_production(history, "v0001") is None


def test_rollback_moves_production_records_it_and_sets_the_zenml_stage(
    engine_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_engineering.infrastructure.ml import model_runtime
    from llm_engineering.infrastructure.registry import promote, promotion_history, read_pointer

    stages: list[tuple[str, str, str]] = []
    monkeypatch.setattr(model_runtime, "zenml_set_stage", lambda *args: stages.append(args) or {"stage": args[2]})
    models = engine_settings.models_dir
    with pytest.raises(ConfigurationError, match="no production version"):
        rollback_production(engine_settings)
    promote(models, "v0001", actor="evaluation gate")
    promote(models, "v0002", actor="evaluation gate")
    result = rollback_production(engine_settings, actor="on-call", reason="v0002 answers worse")
    assert read_pointer(models, "llm-twin", "production") == "v0001"
    last = promotion_history(models)[-1]
    assert last["action"] == "rollback" and last["version"] == "v0001" and last["previous"] == "v0002"
    assert last["actor"] == "on-call" and last["reason"] == "v0002 answers worse"
    assert stages == [("llm-twin", "v0001", "production")]
    assert result["switch"] is None  # nothing served and nothing recorded: no engine to switch
    with pytest.raises(ConfigurationError, match="pass --to"):
        rollback_production(engine_settings)  # v0001 has no earlier production version
    write_serving_state(engine_settings, _state("llm-twin:v0001"))
    result = rollback_production(engine_settings, to="2")  # --to; a recorded version follows the rollback
    assert read_pointer(models, "llm-twin", "production") == "v0002"
    assert result["switch"]["model_spec"] == "llm-twin:v0002"
    assert active_serving(engine_settings).model_spec == "llm-twin:v0002"


def test_rollback_cli(engine_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from llm_engineering.infrastructure.ml import model_runtime
    from llm_engineering.infrastructure.registry import promote, read_pointer
    from llm_engineering.settings import get_settings
    from tools.twin_rollback import main

    monkeypatch.setattr(model_runtime, "zenml_set_stage", lambda *args: {"stage": args[2]})
    promote(engine_settings.models_dir, "v0001")
    promote(engine_settings.models_dir, "v0002")
    monkeypatch.setenv("DATA_DIR", str(engine_settings.data_dir))
    monkeypatch.setenv("LLM_BASE_URL", engine_settings.llm_base_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["--reason", "regression"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "llm-twin:v0002 -> llm-twin:v0001" in result.output
    assert read_pointer(engine_settings.models_dir, "llm-twin", "production") == "v0001"


def test_commands_switch_status_and_down_leave_nothing_running(engine_settings: Settings) -> None:
    """`llm_server up`, `llm_server switch`, `local_infra status`, `local_infra down` as the commands run."""
    import subprocess

    from llm_engineering.infrastructure.ml.inference_engine import llm_engine_services
    from llm_engineering.settings import PROJECT_ROOT

    env = {
        **os.environ,
        "DATA_DIR": str(engine_settings.data_dir),
        "VLLM_PYTHON": str(engine_settings.vllm_python),
        "LLM_MODEL_ID": engine_settings.llm_model_id,
        "LLM_BASE_URL": engine_settings.llm_base_url,
        "INFERENCE_PORT": str(engine_settings.inference_port),
        "MONGODB_URI": f"mongodb://127.0.0.1:{find_free_port()}",
        "LLM_ENGINE": "vllm",
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    try:
        up = cli("tools.llm_server", "up")
        assert up.returncode == 0 and "llm-twin:v0001" in up.stdout, up.stdout + up.stderr
        switched = cli("tools.llm_server", "switch", "--model", "llm-twin:v0002")
        assert switched.returncode == 0, switched.stdout + switched.stderr
        assert json.loads(switched.stdout)["service_name"] == "vllm-server-v0002"
        status = cli("tools.local_infra", "status")
        assert "LLM (vllm-server-v0002): running" in status.stdout, status.stdout + status.stderr
        again = cli("tools.llm_server", "up")
        assert "already running" in again.stdout and "llm-twin:v0002" in again.stdout, again.stdout + again.stderr
        down = cli("tools.local_infra", "down")
        assert "LLM (vllm-server-v0002): stopped" in down.stdout, down.stdout + down.stderr
        assert all(not service.groups() for service in llm_engine_services(engine_settings))
    finally:
        for service in llm_engine_services(engine_settings):
            service.stop()
