"""llama.cpp's `llama-server` as the second serving engine (`LLM_ENGINE=llamacpp`): the argv and environment.

It serves a GGUF (LLM_GGUF_FILE, or the served model exported once by export.served_gguf) through its
OpenAI-compatible API with parallel slots and continuous batching, under the configured model id (`--alias`), with
the chat template embedded in the GGUF (`--jinja`: the twin's TWIN_CHAT_TEMPLATE, rendered by llama.cpp's Jinja
engine). Host and port come from LLM_BASE_URL, exactly as for vLLM; the API key goes through LLAMA_API_KEY.
"""

from __future__ import annotations

import os
from pathlib import Path

from llm_engineering.settings import Settings

SERVICE_NAME = "llama-server"


def llama_cpp_threads(settings: Settings) -> int:
    """LLM_CPU_THREADS, else every core this process may run on (as for vLLM's engine)."""
    if settings.llm_cpu_threads is not None:
        return max(1, settings.llm_cpu_threads)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def llama_server_command(settings: Settings, gguf: Path, host: str, port: int) -> list[str]:
    """argv of llama-server for these settings (ConfigurationError when the binary is not built)."""
    from llm_engineering.infrastructure.ml.export import llama_cpp_binary

    threads = llama_cpp_threads(settings)
    return [
        str(llama_cpp_binary(settings, "llama-server")),
        "--model",
        str(gguf),
        "--alias",
        settings.llm_model_id,  # clients ask for the configured id, as with vLLM's --served-model-name
        "--host",
        host,
        "--port",
        str(port),
        "--parallel",
        str(settings.llm_max_num_seqs),  # slots decoded together (continuous batching)
        "--kv-unified-per-slot",
        str(settings.llm_max_model_len),  # each request gets LLM_MAX_MODEL_LEN; the KV pool is slots x that
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--jinja",  # apply the GGUF's own chat template with llama.cpp's Jinja engine
        "--no-webui",
    ]
