"""Every interface the application needs from the outside world, in one place.

Application code depends on these protocols only; `infrastructure/` implements them and the composition root
(`llm_engineering/wiring.py`) builds the concrete adapters from `Settings`. Tests substitute the fakes in
`tests/fakes.py` for fast orchestration tests, in addition to the real-service tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Unpack
from uuid import UUID

from llm_engineering.domain.chunks import Chunk, CleanedDocument, RetrievalResult
from llm_engineering.domain.documents import RawDocument, UserDocument
from llm_engineering.domain.llm import ChatResult, GenerationOptions, JSONResult, JSONSchema, Messages, StreamDelta
from llm_engineering.domain.pages import FetchedPage
from llm_engineering.domain.types import DataCategory, UpsertOutcome
from llm_engineering.domain.vectors import SparseVec

if TYPE_CHECKING:
    from llm_engineering.application.crawlers.base import Crawler
    from llm_engineering.application.evaluation.results import JudgeEndpoint, ModelUnderTest


# --- Raw data warehouse ------------------------------------------------------------------------------------------
class WarehouseRepository(Protocol):
    """The raw data warehouse: users and raw documents, one collection per category."""

    def ensure_indexes(self) -> None: ...

    def get_or_create_user(self, full_name: str) -> tuple[UserDocument, bool]: ...

    def find_user(self, full_name: str) -> UserDocument | None: ...

    def list_users(self) -> list[UserDocument]: ...

    def upsert_user(self, user: UserDocument) -> UpsertOutcome: ...

    def upsert_document(self, document: RawDocument) -> UpsertOutcome: ...

    def find_documents(self, category: DataCategory, author_ids: Iterable[UUID] | None = None) -> list[RawDocument]: ...

    def document_versions(self, category: DataCategory) -> dict[str, tuple[str, str]]:
        """id -> (author id, content hash) of every document in the category, without reading the content: what
        an incremental feature run compares."""
        ...

    def get_documents(self, category: DataCategory, ids: Iterable[UUID | str]) -> list[RawDocument]:
        """The documents with these ids (those that exist), by link."""
        ...

    def count(self, category: DataCategory) -> int: ...

    def export_records(self, category: DataCategory) -> Iterator[dict[str, Any]]: ...

    def document_links(self, category: DataCategory, ids: Iterable[UUID | str]) -> dict[str, str]:
        """id -> link of those ids that exist in the category."""
        ...

    def user_names(self, ids: Iterable[UUID | str]) -> dict[str, str]:
        """id -> full name of those user ids that exist."""
        ...


# --- Feature store (vector store) --------------------------------------------------------------------------------
class VectorSearch(Protocol):
    """The read side of the feature store that retrieval needs."""

    def exists(self) -> bool: ...

    def search(
        self,
        mode: str,
        dense: Sequence[float] | None,
        sparse: SparseVec | None,
        limit: int,
        author_full_name: str | None = None,
        prefetch_limit: int | None = None,
    ) -> list[tuple[Chunk, float]]:
        """mode: dense | sparse | hybrid (both prefetched, fused with RRF_K). The filter applies to every list."""
        ...


class FeatureStore(VectorSearch, Protocol):
    """Chunks with dense + sparse vectors, and cleaned documents with their completion markers.

    Two adapters implement it (Qdrant's in-process engine and qdrant-client for a server); both pass the
    contract suite in tests/integration/test_vector_store_contract.py.
    """

    def ensure_collections(self, dense_size: int) -> bool: ...

    def markers(self) -> dict[str, str]: ...

    def chunk_document_ids(self) -> set[str]: ...

    def upsert_chunks(self, chunks: Sequence[Chunk], dense: Any, sparse: Sequence[SparseVec]) -> None: ...

    def delete_chunks(self, document_id: UUID | str, keep: Sequence[UUID | str] = ()) -> None: ...

    def put_document(self, document: CleanedDocument, marker: str, stats: dict[str, Any]) -> None: ...

    def delete_document(self, document_id: UUID | str) -> None: ...

    def count_chunks(self) -> int: ...

    def cleaned_documents(self, category: str | None = None, author: str | None = None) -> list[CleanedDocument]: ...


# --- Models: embeddings, reranker, tokenizers ---------------------------------------------------------------------
class ChunkTokenizer(Protocol):
    """What chunking needs from the embedding model's tokenizer: budgets are measured in its tokens."""

    @property
    def max_seq_length(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...


class QueryEncoder(Protocol):
    """Dense query vectors (one query at a time, on the request path)."""

    model_id: str

    def encode_query(self, text: str) -> Any: ...


class Embedder(ChunkTokenizer, QueryEncoder, Protocol):
    """The embedding model: batch encoding for indexing, its tokenizer for chunking, single-query encoding."""

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str], show_progress: bool = False, batch_size: int | None = None) -> Any: ...


class Reranker(Protocol):
    model_id: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class PromptTokenCounter(Protocol):
    """Counts and truncates text in the served LLM's tokens (context budgets, history trimming)."""

    name: str

    def count(self, text: str) -> int: ...

    def truncate(self, text: str, max_tokens: int) -> str: ...


# --- LLM ---------------------------------------------------------------------------------------------------------
class LLM(Protocol):
    """An OpenAI-compatible chat model: local vLLM by default, any endpoint by configuration."""

    model: str
    base_url: str

    async def chat(self, messages: Messages, **options: Unpack[GenerationOptions]) -> ChatResult: ...

    async def chat_json(
        self, messages: Messages, schema: JSONSchema, **options: Unpack[GenerationOptions]
    ) -> JSONResult:
        """A JSON-schema-constrained answer (the schema's title names it): (parsed JSON or None, raw result)."""
        ...

    def stream_chat(self, messages: Messages, **options: Unpack[GenerationOptions]) -> AsyncIterator[StreamDelta]:
        """Text pieces as they are generated; the last one carries usage and the finish reason."""
        ...

    async def ready(self, timeout_s: float = 3.0) -> tuple[bool, str]: ...

    async def aclose(self) -> None: ...


# --- Tracing -----------------------------------------------------------------------------------------------------
class StageRecord(Protocol):
    """What a stage reports about itself inside `with trace.stage(...) as stage:`."""

    output: dict[str, Any] | None
    usage: dict[str, int] | None
    model: str | None


class RequestTrace(Protocol):
    timings_ms: dict[str, float]

    def stage(
        self, name: str, input: dict[str, Any] | None = None, span_type: str = "general"
    ) -> AbstractContextManager[StageRecord]: ...

    def total_ms(self) -> float: ...

    def end(self, output: dict[str, Any] | None = None, error: BaseException | None = None) -> None: ...


class Tracer(Protocol):
    def start(self, name: str, input: dict[str, Any], metadata: dict[str, Any] | None = None) -> RequestTrace: ...

    def flush(self) -> None: ...


# --- Crawling: HTTP pages and a real browser ----------------------------------------------------------------------
class PageFetcher(Protocol):
    """Polite HTTP GET (per-domain delay, retries with backoff, timeouts). Raises `CrawlError` naming the link."""

    def get(self, url: str, *, raise_for_status: bool = True) -> FetchedPage: ...

    def close(self) -> None: ...


class Browser(Protocol):
    """A real (headless) browser for JavaScript-rendered pages. Failures raise `CrawlError`/`BrowserError`."""

    def open(self, url: str, timeout_s: float | None = None) -> int | None:
        """Load `url`; the HTTP status when known."""
        ...

    def run_script(self, script: str, *args: Any) -> Any: ...

    def page_source(self) -> str: ...

    def current_url(self) -> str: ...

    def exists(self, css_selector: str) -> bool: ...

    def type_text(self, css_selector: str, text: str) -> None: ...

    def click(self, css_selector: str) -> None: ...

    def close(self) -> None: ...


class CrawlerRegistry(Protocol):
    """What the ETL needs from the crawler dispatcher: the crawler for a link, its platform, one close."""

    def get_crawler(self, link: str) -> Crawler: ...

    def platform_for(self, link: str) -> str: ...

    def close(self) -> None: ...


class DomainThrottle(Protocol):
    """Waits so that two hits on one domain are at least the configured delay apart (shared by crawlers)."""

    def wait(self, url: str) -> None: ...


# --- Search for applications (RAG, evaluation, datasets) ----------------------------------------------------------
class Retriever(Protocol):
    """Search over the feature store (application/rag/retriever.py: hybrid dense + sparse).

    `author` is an explicit filter, already resolved by the caller (the RAG service resolves it once per request).
    """

    def search(self, query: str, k: int = 5, author: str | None = None, mode: str | None = None) -> RetrievalResult: ...


class AuthorDirectory(Protocol):
    """The warehouse's authors for self-query (cached; looking up never creates a user)."""

    def known_authors(self, fresh: bool = False) -> list[str]:
        """Known full names (cached; `fresh=True` asks the warehouse now)."""
        ...

    def canonical(self, full_name: str) -> str | None:
        """The warehouse's spelling of a name (case and spacing ignored), or None."""
        ...

    def is_known(self, full_name: str) -> bool: ...

    def extract_author(self, query: str) -> str | None: ...


# --- Dataset generation -------------------------------------------------------------------------------------------
class KeyValueCache(Protocol):
    """A small persistent key -> JSON value store (dataset generation caches its LLM generations here).

    `put` is durable when it returns (a killed run keeps what it already generated); `close` releases the file.
    """

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...


# --- Versioned artifacts -------------------------------------------------------------------------------------------
class ArtifactStore(Protocol):
    """Versions of one kind of artifact (datasets, models, reports, vector-store versions): each written whole or
    not at all into `<root>/<version>/`, with atomic aliases (`latest`, `production`)."""

    root: Path

    def next_version(self) -> str: ...

    def write(
        self, fill: Callable[[Path, str], None], version: str | None = None, alias: str | None = "latest"
    ) -> Path:
        """`fill(folder, version)` writes the files; the folder becomes the version when it returns."""
        ...

    def write_to(self, target: str | Path, fill: Callable[[Path, str], None]) -> Path:
        """The same into a folder outside the store (a user's output folder)."""
        ...

    def versions(self) -> list[str]: ...

    def resolve(self, ref: str | None = None) -> Path | None:
        """A version or alias (None: latest) -> its folder."""
        ...


# --- Evaluation ---------------------------------------------------------------------------------------------------
class SequenceScorer(Protocol):
    """Log-probabilities of answers under one causal language model (judge-free evaluation: perplexity, DPO
    implicit rewards). The prompt is rendered with the model's chat template exactly as in training; only the
    answer's tokens (and its end-of-turn) are scored."""

    model_id: str

    def answer_logprobs(self, messages: Messages, answer: str) -> tuple[float, int]:
        """(sum of the answer tokens' log-probabilities in nats, number of answer tokens)."""
        ...

    def answer_logprobs_many(self, items: Sequence[tuple[Messages, str]]) -> list[tuple[float, int]]:
        """The same for many (prompt messages, answer) pairs, batched."""
        ...

    def close(self) -> None:
        """Release the model's memory."""
        ...


class ModelRuntime(Protocol):
    """Runs the models an evaluation compares: a scorer per checkpoint, an LLM answering with one checkpoint for
    the duration of a block (a vLLM server, or transformers in-process), and the judge for the run."""

    generation_backend: str

    def scorer(self, model: ModelUnderTest) -> SequenceScorer:
        """A scorer over `model`'s checkpoint; the caller closes it."""
        ...

    def serve(self, model: ModelUnderTest) -> AbstractContextManager[LLM]:
        """`model` answering through the LLM port inside the block; stopped afterwards."""
        ...

    def judge(self) -> AbstractContextManager[JudgeEndpoint]:
        """The judge endpoint (or the reason there is none) inside the block."""
        ...
