"""In-memory fakes of the application's ports, for fast unit tests of orchestration.

They are used *in addition to* the real-service tests (nx-27017, Qdrant engines, vLLM), never instead of them.
Each fake implements the protocol in `llm_engineering/application/ports.py` with the smallest honest logic:
brute-force cosine / dot-product search with reciprocal rank fusion, a dict warehouse, a scripted LLM.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import numpy as np

from llm_engineering.application.rag.fusion import reciprocal_rank_fusion
from llm_engineering.domain.chunks import Chunk, CleanedDocument
from llm_engineering.domain.documents import DOCUMENT_CLASSES, RawDocument, UserDocument, normalize_full_name
from llm_engineering.domain.errors import LLMUnavailableError
from llm_engineering.domain.llm import ChatResult, StreamDelta
from llm_engineering.domain.types import DataCategory, UpsertOutcome
from llm_engineering.domain.vectors import RRF_K, SparseVec


# --- warehouse -----------------------------------------------------------------------------------------------------
class FakeWarehouse:
    """The WarehouseRepository port in memory; it runs the adapter's contract tests (integration/test_warehouse.py)."""

    def __init__(self) -> None:
        self.users: dict[str, UserDocument] = {}
        self.documents: dict[str, RawDocument] = {}  # by link

    def ensure_indexes(self) -> None:
        pass

    def get_or_create_user(self, full_name: str) -> tuple[UserDocument, bool]:
        found = self.find_user(full_name)
        if found is not None:
            return found, False
        user = UserDocument.from_full_name(full_name)
        self.users[user.full_name] = user
        return user, True

    def find_user(self, full_name: str) -> UserDocument | None:
        return self.users.get(" ".join(full_name.split()))

    def list_users(self) -> list[UserDocument]:
        return list(self.users.values())

    def upsert_user(self, user: UserDocument) -> UpsertOutcome:
        known = user.full_name in self.users
        self.users[user.full_name] = user
        return UpsertOutcome.UPDATED if known else UpsertOutcome.INSERTED

    def upsert_document(self, document: RawDocument) -> UpsertOutcome:
        old = self.documents.get(document.link)
        if old is not None and old.content_hash == document.content_hash:
            return UpsertOutcome.UNCHANGED
        self.documents[document.link] = document if old is None else document.model_copy(update={"id": old.id})
        return UpsertOutcome.INSERTED if old is None else UpsertOutcome.UPDATED

    def find_documents(self, category: DataCategory, author_ids: Iterable[UUID] | None = None) -> list[RawDocument]:
        wanted = set(author_ids) if author_ids is not None else None
        found = [
            d
            for d in self.documents.values()
            if isinstance(d, DOCUMENT_CLASSES[category]) and (wanted is None or d.author_id in wanted)
        ]
        return sorted(found, key=lambda d: d.link)  # the adapter's order (by link)

    def document_versions(self, category: DataCategory) -> dict[str, tuple[str, str]]:
        return {str(d.id): (str(d.author_id), d.content_hash) for d in self.find_documents(category)}

    def get_documents(self, category: DataCategory, ids: Iterable[UUID | str]) -> list[RawDocument]:
        wanted = {str(i) for i in ids}
        return sorted((d for d in self.find_documents(category) if str(d.id) in wanted), key=lambda d: d.link)

    def count(self, category: DataCategory) -> int:
        return len(self.users) if category == DataCategory.USERS else len(self.find_documents(category))

    def export_records(self, category: DataCategory) -> Iterator[dict[str, Any]]:
        yield from (d.model_dump(mode="json") for d in self.find_documents(category))

    def document_links(self, category: DataCategory, ids: Iterable[UUID | str]) -> dict[str, str]:
        wanted = {str(i) for i in ids}
        return {str(d.id): d.link for d in self.find_documents(category) if str(d.id) in wanted}

    def user_names(self, ids: Iterable[UUID | str]) -> dict[str, str]:
        wanted = {str(i) for i in ids}
        return {str(u.id): u.full_name for u in self.users.values() if str(u.id) in wanted}


# --- feature store -----------------------------------------------------------------------------------------------
class FakeVectorStore:
    """The FeatureStore port in memory: brute-force dense cosine, sparse dot product with Qdrant's IDF over the live
    chunks, hybrid RRF (k=60). It runs the adapters' contract suite (integration/test_vector_store_contract.py)."""

    def __init__(self) -> None:
        self.points: dict[str, tuple[Chunk, np.ndarray, SparseVec]] = {}
        self.docs: dict[str, tuple[CleanedDocument, str]] = {}
        self.dense_size: int | None = None
        self.searches: list[dict[str, Any]] = []

    def exists(self) -> bool:
        return self.dense_size is not None

    def ensure_collections(self, dense_size: int) -> bool:
        recreated = self.dense_size is not None and self.dense_size != dense_size
        if recreated:
            self.points.clear()
            self.docs.clear()
        self.dense_size = dense_size
        return recreated

    def markers(self) -> dict[str, str]:
        return {doc_id: marker for doc_id, (_, marker) in self.docs.items()}

    def chunk_document_ids(self) -> set[str]:
        return {str(chunk.document_id) for chunk, _, _ in self.points.values()}

    def all_points(self) -> dict[str, dict[str, Any]]:
        return {pid: chunk.model_dump(mode="json") for pid, (chunk, _, _) in self.points.items()}

    def upsert_chunks(self, chunks: Sequence[Chunk], dense: Any, sparse: Sequence[SparseVec]) -> None:
        for chunk, vector, sparse_vector in zip(chunks, dense, sparse, strict=True):
            self.points[str(chunk.id)] = (chunk, np.asarray(vector, dtype=float), sparse_vector)

    def delete_chunks(self, document_id: UUID | str, keep: Sequence[UUID | str] = ()) -> None:
        kept = {str(k) for k in keep}
        for pid in [p for p, (c, _, _) in self.points.items() if str(c.document_id) == str(document_id)]:
            if pid not in kept:
                del self.points[pid]

    def put_document(self, document: CleanedDocument, marker: str, stats: dict[str, Any]) -> None:
        self.docs[str(document.id)] = (document, marker)

    def delete_document(self, document_id: UUID | str) -> None:
        self.delete_chunks(document_id)
        self.docs.pop(str(document_id), None)

    def count_chunks(self) -> int:
        return len(self.points)

    def cleaned_documents(self, category: str | None = None, author: str | None = None) -> list[CleanedDocument]:
        wanted = normalize_full_name(author) if author else None
        return [
            d
            for d, _ in self.docs.values()
            if (category is None or d.category == category) and (wanted is None or d.author_full_name == wanted)
        ]

    def _idf(self) -> dict[int, float]:
        """Qdrant's IDF modifier, ln((N - n + 0.5) / (n + 0.5) + 1), over every live chunk with a sparse vector."""
        with_terms = [s for _, _, s in self.points.values() if s.indices]
        counts: dict[int, int] = {}
        for vector in with_terms:
            for index in set(vector.indices):
                counts[index] = counts.get(index, 0) + 1
        total = len(with_terms)
        return {index: math.log((total - n + 0.5) / (n + 0.5) + 1) for index, n in counts.items()}

    def search(self, mode, dense, sparse, limit, author_full_name=None, prefetch_limit=None):
        if mode not in ("dense", "sparse", "hybrid"):
            raise ValueError(f"unknown search mode {mode!r}: dense, sparse or hybrid")
        self.searches.append({"mode": mode, "author": author_full_name, "limit": limit})
        wanted = normalize_full_name(author_full_name) if author_full_name else None
        candidates = [(c, v, s) for c, v, s in self.points.values() if wanted in (None, c.author_full_name)]

        def dense_rank() -> list[tuple[Chunk, float]]:
            query = np.asarray(dense, dtype=float)
            scored = [
                (c, float(v @ query / (np.linalg.norm(v) * np.linalg.norm(query) or 1.0))) for c, v, _ in candidates
            ]
            return sorted(scored, key=lambda cs: -cs[1])

        def sparse_rank() -> list[tuple[Chunk, float]]:
            if sparse is None or not sparse.indices:
                return []
            idf = self._idf()
            weights = {i: w * idf.get(i, 0.0) for i, w in zip(sparse.indices, sparse.values, strict=True)}
            scored = [
                (c, sum(weights.get(i, 0.0) * v for i, v in zip(s.indices, s.values, strict=True)))
                for c, _, s in candidates
            ]
            return sorted([cs for cs in scored if cs[1] > 0], key=lambda cs: -cs[1])

        if mode == "dense":
            return dense_rank()[:limit]
        if mode == "sparse":
            return sparse_rank()[:limit]
        depth = prefetch_limit or max(limit * 4, 20)
        lists = [ranking for ranking in (dense_rank()[:depth], sparse_rank()[:depth]) if ranking]
        by_id = {str(c.id): c for ranking in lists for c, _ in ranking}
        fused = reciprocal_rank_fusion([[str(c.id) for c, _ in ranking] for ranking in lists], k=RRF_K)
        return [(by_id[cid], score) for cid, score in fused[:limit]]


# --- models --------------------------------------------------------------------------------------------------------
class HashingEncoder:
    """A deterministic bag-of-words embedder (hashed words → 64 dims) with whitespace tokens.

    It implements `Embedder` so chunking and retrieval run without model weights; rankings follow word overlap.
    """

    model_id = "test/hashing-encoder"
    dimension = 64
    max_seq_length = 256

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension)
        for word in text.lower().split():
            bucket = int(hashlib.blake2b(word.strip(".,?!:;").encode(), digest_size=2).hexdigest(), 16)
            vector[bucket % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def encode(self, texts: Sequence[str], show_progress: bool = False, batch_size: int | None = None) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension))

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        offsets, position = [], 0
        for word in text.split():
            start = text.index(word, position)
            offsets.append((start, start + len(word)))
            position = start + len(word)
        return offsets


class WordCounter:
    """PromptTokenCounter: one token per whitespace-separated word (easy arithmetic in tests)."""

    name = "test:words"

    def count(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[: max(0, max_tokens)])


# --- LLM -----------------------------------------------------------------------------------------------------------
@dataclass
class LLMCall:
    kind: str  # chat | chat_json | stream
    messages: list[dict[str, Any]]
    options: dict[str, Any]
    started: float = field(default_factory=time.monotonic)


class ScriptedLLM:
    """An LLM port that answers from a script and records every call.

    `json_answers` maps a structured-output name ("self_query", "query_expansion") to the parsed JSON to return
    (or an exception instance to raise, or a function of the messages that returns either); `answer` is the text
    of chat / stream calls, streamed word by word (or a function of the messages that returns it).
    """

    def __init__(
        self,
        answer: str | Callable[[list[dict[str, Any]]], str] = "An answer [1].",
        json_answers: dict[str, Any] | None = None,
        fail_with: Exception | None = None,
        on_call: Callable[[LLMCall], None] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.model = "test/scripted-llm"
        self.base_url = "http://scripted.invalid/v1"
        self.answer = answer
        self.json_answers = json_answers or {}
        self.fail_with = fail_with
        self.on_call = on_call
        self.delay_s = delay_s  # before an answer (or its first streamed piece): a slow model under load
        self.calls: list[LLMCall] = []

    def _record(self, kind: str, messages, options) -> None:
        call = LLMCall(kind, [dict(m) for m in messages], options)
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        if self.fail_with is not None:
            raise self.fail_with

    def calls_of(self, kind: str) -> list[LLMCall]:
        return [c for c in self.calls if c.kind == kind]

    def _answer(self, messages) -> str:
        return self.answer(messages) if callable(self.answer) else self.answer

    async def chat(self, messages, **options) -> ChatResult:
        self._record("chat", messages, options)
        await asyncio.sleep(self.delay_s)
        answer = self._answer(messages)
        words = answer.split()
        return ChatResult(answer, prompt_tokens=_words(messages), completion_tokens=len(words), finish_reason="stop")

    async def chat_json(self, messages, schema, **options):
        name = schema.get("title", "output")
        self._record("chat_json", messages, {"name": name, **options})
        scripted = self.json_answers.get(name)
        if callable(scripted):
            scripted = scripted(messages)
        if isinstance(scripted, Exception):
            raise scripted
        return scripted, ChatResult(str(scripted), prompt_tokens=_words(messages), completion_tokens=5)

    async def stream_chat(self, messages, **options) -> AsyncIterator[StreamDelta]:
        self._record("stream", messages, options)
        await asyncio.sleep(self.delay_s)
        words = self._answer(messages).split(" ")
        for i, word in enumerate(words):
            yield StreamDelta(text=word if i == 0 else f" {word}")
        yield StreamDelta(finish_reason="stop", prompt_tokens=_words(messages), completion_tokens=len(words))

    async def ready(self, timeout_s: float = 3.0) -> tuple[bool, str]:
        return (False, str(self.fail_with)) if self.fail_with else (True, "")

    async def aclose(self) -> None:
        pass


def _words(messages) -> int:
    return sum(len(str(m["content"]).split()) for m in messages)


def unreachable_llm() -> ScriptedLLM:
    return ScriptedLLM(fail_with=LLMUnavailableError("cannot reach the LLM at LLM_BASE_URL=http://scripted.invalid"))


# --- key-value cache ---------------------------------------------------------------------------------------------
# --- tracing -------------------------------------------------------------------------------------------------------
@dataclass
class _Stage:
    output: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    model: str | None = None


class RecordingTrace:
    def __init__(self, name: str) -> None:
        self.name = name
        self.timings_ms: dict[str, float] = {}
        self.stages: list[tuple[str, _Stage]] = []
        self.ended: dict[str, Any] | None = None
        self._started = time.perf_counter()

    @contextmanager
    def stage(self, name: str, input: dict[str, Any] | None = None, span_type: str = "general"):
        record = _Stage()
        started = time.perf_counter()
        try:
            yield record
        finally:
            self.timings_ms[name] = round((time.perf_counter() - started) * 1000, 3)
            self.stages.append((name, record))

    def total_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 3)

    def end(self, output: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        self.ended = {"output": output, "error": error}


class RecordingTracer:
    def __init__(self) -> None:
        self.traces: list[RecordingTrace] = []

    def start(self, name: str, input: dict[str, Any], metadata: dict[str, Any] | None = None) -> RecordingTrace:
        trace = RecordingTrace(name)
        self.traces.append(trace)
        return trace

    def flush(self) -> None:
        pass


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return float(dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0))


def _dot(weights: dict[int, float], vector: SparseVec) -> float:
    return sum(weights.get(i, 0.0) * v for i, v in zip(vector.indices, vector.values, strict=True))


def fake_rag_corpus(topics: dict[tuple[str, str], str]) -> tuple[FakeWarehouse, FakeVectorStore, HashingEncoder]:
    """A warehouse of one short article per (author, topic), indexed by the real feature pipeline into fakes."""
    from llm_engineering.application.preprocessing.features import FeatureEngineering
    from llm_engineering.domain.documents import ArticleDocument

    warehouse, store, encoder = FakeWarehouse(), FakeVectorStore(), HashingEncoder()
    for (author, topic), text in topics.items():
        user, _ = warehouse.get_or_create_user(author)
        body = "\n\n".join(f"{text} Paragraph {i} on {topic}." for i in range(3))
        warehouse.upsert_document(
            ArticleDocument(
                author_id=user.id,
                author_full_name=user.full_name,
                platform="blog",
                link=f"https://example.org/{user.last_name.lower()}/{topic}",
                content={"Title": f"{author} on {topic}", "Content": body},
            )
        )
    FeatureEngineering(warehouse, store, encoder, show_progress=False).run("all")
    return warehouse, store, encoder


def fake_container(corpus, llm: ScriptedLLM, counter=None, tracer=None, settings=None):
    """The composition root with fakes of the ports handed in: services are assembled exactly as in production."""
    from llm_engineering.settings import Settings
    from llm_engineering.wiring.container import Container

    warehouse, store, encoder = corpus
    return Container(
        settings or Settings(),
        warehouse=warehouse,
        feature_store=store,
        embedder=encoder,
        reranker=None,
        llm=llm,
        prompt_token_counter=counter or WordCounter(),
        tracer=tracer or RecordingTracer(),
    )


async def collect_stream(service, question: str):
    """The streamed text and the final answer of `service.stream(question)`."""
    deltas, done = [], None
    async for event in service.stream(question):
        if event.kind == "delta":
            deltas.append(event.data)
        elif event.kind == "done":
            done = event.data
    return "".join(deltas), done


def fake_services(corpus, llm: ScriptedLLM, counter=None, **config):
    """(RAGService, SearchService, RecordingTracer) from the composition root with fakes handed in."""
    from llm_engineering.application.rag.rag_service import RAGConfig

    container = fake_container(corpus, llm, counter)
    service = container.build_rag_service(
        config=RAGConfig(**{"k": 2, "expand_n": 2, "max_model_len": 512, "max_answer_tokens": 64, **config})
    )
    return service, container.search_service, container.tracer


# --- evaluation: answer log-probabilities ------------------------------------------------------------------------
class FakeScorer:
    """The SequenceScorer port with scripted numbers: each answer text maps to (sum log-prob, tokens); unknown
    answers get -1 nat per whitespace word (one token per word). Records every scored pair and `close()`."""

    def __init__(self, model_id: str = "test/fake-scorer", scores: dict[str, tuple[float, int]] | None = None) -> None:
        self.model_id = model_id
        self.scores = scores or {}
        self.scored: list[tuple[list[dict[str, Any]], str]] = []
        self.closed = False

    def answer_logprobs(self, messages, answer: str) -> tuple[float, int]:
        self.scored.append(([dict(m) for m in messages], answer))
        if answer in self.scores:
            return self.scores[answer]
        words = max(1, len(answer.split()))
        return -1.0 * words, words

    def answer_logprobs_many(self, items) -> list[tuple[float, int]]:
        return [self.answer_logprobs(messages, answer) for messages, answer in items]

    def close(self) -> None:
        self.closed = True
