"""Zero-downtime model switch: a second engine for the new version, the API follows, the old engine drains and stops.

vLLM (the CPU build above all) cannot swap the merged weights of a running server in place, so a switch runs two
engines for a short while (docs/serving.md):

1. start a second engine (`vllm-server-v0004`, its own free port, the same tuning and environment as
   `poe run-llm-server`: inference_engine.llm_server_service) and wait until GET /v1/models answers;
2. record it in the serving state file (state.py, written atomically): the RAG API follows the file and sends new
   requests to the new engine, while requests in flight finish on the old one;
3. wait (bounded) until the API at INFERENCE_HOST:INFERENCE_PORT, if one answers, reports the new engine on
   GET /ready and no request left on the old one;
4. drain the old engine (its /metrics `vllm:num_requests_running` + `vllm:num_requests_waiting` at 0, bounded) and
   stop its whole process group.

A new engine that fails to start is stopped again; the old engine and the state file are left as they were, and the
error names the new engine's log. With nothing served, a switch only records the version: the next
`poe run-llm-server` serves it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from loguru import logger
from pydantic import BaseModel, Field

from llm_engineering.domain.errors import ConfigurationError, ServiceUnavailableError
from llm_engineering.infrastructure.local_services import LocalService, find_free_port
from llm_engineering.infrastructure.ml.inference_engine import (
    engine_service_name,
    engine_settings,
    is_local_endpoint,
    llm_server_address,
    llm_server_service,
    prepare_engine,
    start_engine,
)
from llm_engineering.infrastructure.serving.state import ActiveServing, active_serving, write_serving_state
from llm_engineering.settings import Settings

DRAIN_METRICS = ("vllm:num_requests_running", "vllm:num_requests_waiting")
POLL_S = 0.25
# Zero requests on the old engine must be seen this many polls in a row: a RAG request calls the LLM several times
# (self-query, expansion, answer) and is briefly at zero between its calls.
QUIET_POLLS = 3


class SwitchResult(BaseModel):
    """What a switch did: the engine that answers now, what it replaced, and how the hand-over went."""

    model_spec: str = Field(description="The spec served now, pinned to its version (e.g. llm-twin:v0004).")
    version: str | None
    base_url: str
    service_name: str
    port: int
    started: bool = Field(description="A new engine was started (False: nothing served, only recorded; or no-op).")
    previous: ActiveServing | None = Field(description="The engine that answered before (None: nothing ran).")
    api_followed: bool | None = Field(
        default=None, description="The RAG API reported the new engine (None: no API answered at INFERENCE_PORT)."
    )
    drained: bool | None = Field(default=None, description="The old engine reached 0 requests before it was stopped.")
    stopped_previous: bool = False
    seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)


def pin_model_spec(settings: Settings, model_spec: str) -> tuple[str, str | None]:
    """(`model_spec` pinned to a registry version, that version): `llm-twin:production` -> (`llm-twin:v0004`,
    `v0004`), so the served name keeps naming what it serves after the pointer moves. Specs outside the registry
    (a path, the packaged model) stay as they are. Raises ConfigurationError for an unknown version."""
    from llm_engineering.infrastructure.ml.prepare import resolve_model
    from llm_engineering.infrastructure.registry import (
        SFT_SUFFIX,
        is_registered_model_spec,
        registered_model_info,
    )

    if not is_registered_model_spec(settings.models_dir, model_spec):
        resolve_model(engine_settings(settings, model_spec=model_spec))  # names the fix for an unprepared model
        return model_spec, None
    info = registered_model_info(settings.models_dir, model_spec)
    name = info["name"] + (SFT_SUFFIX if info["stage"] == "sft" else "")
    return f"{name}:{info['version']}", info["version"]


def engine_name_for(settings: Settings, model_spec: str, version: str | None) -> str:
    """`vllm-server-v0004` for the twin's versions, `vllm-server-<spec>` for anything else."""
    from llm_engineering.infrastructure.registry import DEFAULT_MODEL_NAME

    suffix = version if version and model_spec == f"{DEFAULT_MODEL_NAME}:{version}" else model_spec
    return f"{engine_service_name(settings)}-{re.sub(r'[^A-Za-z0-9._-]+', '-', suffix).strip('-')}"


def answering_engine(settings: Settings) -> tuple[ActiveServing, LocalService] | None:
    """The engine that answers for the twin now (the recorded one, else the configured one), if it runs."""
    state = active_serving(settings)
    if state is None:
        _, port = llm_server_address(settings)
        try:
            version = pin_model_spec(settings, settings.llm_model_id)[1]
        except ConfigurationError:
            version = None
        state = ActiveServing(
            base_url=settings.llm_base_url,
            model_spec=settings.llm_model_id,
            version=version,
            service_name=engine_service_name(settings),
            port=port,
        )
        service = llm_server_service(settings)
    else:
        service = llm_server_service(settings, model_spec=state.model_spec, port=state.port, name=state.service_name)
    if service is None or not service.is_running():
        return None
    return state, service


def switch_serving(
    settings: Settings,
    model_spec: str,
    *,
    drain_timeout_s: float = 120.0,
    api_timeout_s: float = 30.0,
) -> SwitchResult:
    """Serve `model_spec` (e.g. `llm-twin:v0004`, `llm-twin:production`) without dropping requests (module doc).

    Raises ConfigurationError (remote LLM_BASE_URL, unknown version, engine not installed) and
    ServiceUnavailableError (the new engine did not start: its log named; old engine and state untouched)."""
    started_at = time.monotonic()
    if not is_local_endpoint(settings):
        raise ConfigurationError(
            f"a hot switch starts and stops local engines; LLM_BASE_URL={settings.llm_base_url} is remote: switch "
            "the model where that endpoint is served"
        )
    if settings.llm_engine not in ("vllm", "llamacpp"):
        raise ConfigurationError(f"a hot switch needs LLM_ENGINE=vllm or llamacpp, got {settings.llm_engine!r}")
    spec, version = pin_model_spec(settings, model_spec)
    current = answering_engine(settings)

    if current is None:
        # Nothing is served: record the version; the next `poe run-llm-server` serves it on LLM_BASE_URL.
        _, port = llm_server_address(settings)
        state = write_serving_state(
            settings,
            ActiveServing(
                base_url=settings.llm_base_url,
                model_spec=spec,
                version=version,
                service_name=engine_service_name(settings),
                port=port,
            ),
        )
        logger.info(f"switch: no engine is running; recorded {spec} (the next `poe run-llm-server` serves it)")
        return _result(state, None, started_at, started=False, notes=["nothing was served: recorded only"])

    previous, old = current
    if previous.model_spec == spec:
        logger.info(f"switch: {spec} already answers at {previous.base_url}")
        return _result(previous, previous, started_at, started=False, notes=[f"{spec} already answers"])

    name = engine_name_for(settings, spec, version)
    host, _ = llm_server_address(settings)
    port = find_free_port("127.0.0.1" if host == "localhost" else host)
    # The new engine starts while the old one is busy answering: on a small CPU its compile warm-up takes several
    # times the usual start-up (measured on 2 cores: over 300 s beside 4 looping clients), so it gets three times
    # LLM_SERVER_STARTUP_TIMEOUT_S before the switch gives up (the old engine keeps serving meanwhile).
    patient = settings.model_copy(update={"llm_server_startup_timeout_s": 3 * settings.llm_server_startup_timeout_s})
    new = llm_server_service(patient, model_spec=spec, port=port, name=name)
    assert new is not None  # a local endpoint (checked above)
    engine = engine_settings(settings, model_spec=spec, port=port)
    if settings.llm_engine == "llamacpp":
        from llm_engineering.infrastructure.ml.export import served_gguf

        served_gguf(engine, create=True)
    logger.info(f"switch: starting {name} for {spec} on port {port} beside {previous.service_name}")
    prepare_engine(settings, new)
    try:
        start_engine(new)
    except ServiceUnavailableError as exc:
        raise ServiceUnavailableError(
            f"switch to {spec} failed: the new engine {name} did not start (see {new.log_file}); "
            f"{previous.model_spec} keeps answering and the serving state is unchanged.\n{exc}"
        ) from exc

    state = write_serving_state(
        settings,
        ActiveServing(base_url=engine.llm_base_url, model_spec=spec, version=version, service_name=name, port=port),
    )
    logger.info(f"switch: {spec} answers at {state.base_url}; waiting for the RAG API to follow")
    deadline = time.monotonic() + drain_timeout_s
    notes: list[str] = []
    api_followed = wait_for_api(settings, state, timeout_s=api_timeout_s, drain_deadline=deadline, notes=notes)
    drained = drain_engine(previous.base_url, deadline=deadline, api_key=settings.llm_api_key.get_secret_value())
    if not drained:
        notes.append(f"{previous.service_name} still had requests after {drain_timeout_s:.0f}s: stopped anyway")
    stopped = old.stop()
    if not stopped:
        notes.append(f"{previous.service_name} was not started by this project: left running")
    logger.info(f"switch: {previous.service_name} ({previous.model_spec}) stopped; {spec} serves")
    result = _result(state, previous, started_at, started=True, notes=notes)
    result.api_followed, result.drained, result.stopped_previous = api_followed, drained, stopped
    return result


def _result(
    state: ActiveServing, previous: ActiveServing | None, started_at: float, *, started: bool, notes: list[str]
) -> SwitchResult:
    return SwitchResult(
        model_spec=state.model_spec,
        version=state.version,
        base_url=state.base_url,
        service_name=state.service_name,
        port=state.port,
        started=started,
        previous=previous,
        seconds=round(time.monotonic() - started_at, 1),
        notes=notes,
    )


def api_ready_body(settings: Settings, timeout_s: float = 5.0) -> dict | None:
    """GET /ready of the RAG API at INFERENCE_HOST:INFERENCE_PORT (its JSON, whatever the status), None when no
    API answers there."""
    host = settings.inference_host
    host = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else ("::1" if host == "::" else host)
    netloc = f"[{host}]:{settings.inference_port}" if ":" in host else f"{host}:{settings.inference_port}"
    request = urllib.request.Request(f"http://{netloc}/ready")
    if settings.inference_api_key is not None and settings.inference_api_key.get_secret_value():
        request.add_header("Authorization", f"Bearer {settings.inference_api_key.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - loopback API
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:  # 503 (a dependency down) still says which engine answers
        try:
            return json.loads(exc.read() or b"{}")
        except ValueError:
            return {}
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for_api(
    settings: Settings, state: ActiveServing, *, timeout_s: float, drain_deadline: float, notes: list[str]
) -> bool | None:
    """Wait until the RAG API reports `state`'s engine on GET /ready, then until it has no request left on an
    older engine (bounded by `drain_deadline`). None when no API answers at INFERENCE_HOST:INFERENCE_PORT."""
    deadline = time.monotonic() + timeout_s
    followed = False
    while True:
        body = api_ready_body(settings)
        if body is None:
            if followed:
                return True  # it answered, then went away: nothing left to wait for
            notes.append("no RAG API answered at INFERENCE_HOST:INFERENCE_PORT")
            return None
        serving = body.get("serving") or {}
        if serving.get("model_spec") == state.model_spec:
            followed = True
            if not serving.get("draining"):
                return True
            if time.monotonic() > drain_deadline:
                notes.append(f"the RAG API still had requests on the old engine: {serving.get('draining')}")
                return True
        elif time.monotonic() > deadline:
            notes.append(f"the RAG API did not report {state.model_spec} within {timeout_s:.0f}s")
            return False
        time.sleep(POLL_S)


def engine_load(base_url: str, api_key: str = "", timeout_s: float = 2.0) -> float | None:
    """Requests running + waiting on a vLLM engine (its Prometheus /metrics); None when it exposes no such metrics
    (llama.cpp without --metrics, or the engine is gone)."""
    parts = urlsplit(base_url)
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/metrics")
    if api_key and api_key != "EMPTY":
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - loopback engine
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return parse_engine_load(text)


def parse_engine_load(metrics: str) -> float | None:
    """Sum of `vllm:num_requests_running` and `vllm:num_requests_waiting` samples in a Prometheus text page."""
    total, seen = 0.0, False
    for line in metrics.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[{\s]", line, maxsplit=1)[0]
        if name in DRAIN_METRICS:
            try:
                total += float(line.rsplit(maxsplit=1)[-1])
                seen = True
            except ValueError:
                continue
    return total if seen else None


def drain_engine(base_url: str, *, deadline: float, api_key: str = "") -> bool:
    """Wait until the engine at `base_url` has had no request running or waiting for QUIET_POLLS polls in a row (or
    `deadline`, time.monotonic()). True when it drained (or exposes no load metrics: nothing to wait for)."""
    quiet = 0
    while True:
        load = engine_load(base_url, api_key)
        if load is None:
            return True
        quiet = quiet + 1 if load == 0 else 0
        if quiet >= QUIET_POLLS:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
