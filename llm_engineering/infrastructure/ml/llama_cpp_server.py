"""llama.cpp's `llama-server` as the second serving engine (`LLM_ENGINE=llamacpp`): the argv and environment.

It serves a GGUF (LLM_GGUF_FILE, or the served model exported once by export.served_gguf) through its
OpenAI-compatible API with parallel slots and continuous batching, under the configured model id (`--alias`), with
the chat template embedded in the GGUF (`--jinja`: the twin's TWIN_CHAT_TEMPLATE, rendered by llama.cpp's Jinja
engine). Host and port come from LLM_BASE_URL, exactly as for vLLM; the API key goes through LLAMA_API_KEY.

Its sampling defaults are the served version's generation defaults (manifest.json `generation`; the domain defaults
for a model that is not a registered version): `--temp`, `--repeat-penalty`, `--frequency-penalty`,
`--presence-penalty`, what the Ollama Modelfile of the same version carries (export.ollama_parameters). A request
that sets its own value keeps it; one that leaves a value out gets the version's, e.g. an OpenAI client calling the
engine directly, and `repetition_penalty`, which the project's client sends in vLLM's name (`extra_body`) and
llama.cpp does not read (it reads `repeat_penalty`). vLLM has no such server-side defaults: the RAG service sends
them per request, and a project call that leaves a penalty out (the client omits a 0 penalty; the JSON calls send
none) gets none there but the version's here. Also unlike vLLM: llama.cpp's penalties look at the last 64 tokens, the
prompt's end included, where vLLM's frequency and presence penalties count the answer's tokens only. Answer lengths
and stop sequences stay per request, as with vLLM (`--n-predict` would cut the answers of clients that send no
`max_tokens`).
"""

from __future__ import annotations

import os
from pathlib import Path

from llm_engineering.domain.generation import GenerationDefaults
from llm_engineering.settings import Settings

SERVICE_NAME = "llama-server"


def llama_cpp_threads(settings: Settings) -> int:
    """LLM_CPU_THREADS, else every core this process may run on (as for vLLM's engine)."""
    if settings.llm_cpu_threads is not None:
        return max(1, settings.llm_cpu_threads)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def served_generation_defaults(settings: Settings) -> GenerationDefaults:
    """The generation defaults of the model served (LLM_MODEL_ID, the --alias): a registered version's
    manifest.json `generation`; the domain defaults for the packaged base model, a path or a hub id."""
    from llm_engineering.domain.generation import generation_defaults
    from llm_engineering.infrastructure.ml.model_runtime import manifest_of
    from llm_engineering.infrastructure.registry import is_registered_model_spec, resolve_registered_model

    manifest = None
    if is_registered_model_spec(settings.models_dir, settings.llm_model_id):
        # An unresolvable spec fails where the GGUF is exported, with the registry's own error.
        try:
            manifest = manifest_of(resolve_registered_model(settings.models_dir, settings.llm_model_id))
        except Exception:
            manifest = None
    return generation_defaults(manifest)


def sampling_flags(defaults: GenerationDefaults) -> list[str]:
    """llama-server's sampling defaults for a model version (each request may still set its own)."""
    return [
        "--temp",
        f"{defaults.temperature:g}",  # 0: greedy, as the RAG service asks by default
        "--repeat-penalty",
        f"{defaults.repetition_penalty:g}",
        "--frequency-penalty",
        f"{defaults.frequency_penalty:g}",
        "--presence-penalty",
        f"{defaults.presence_penalty:g}",
    ]


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
        *sampling_flags(served_generation_defaults(settings)),
    ]
