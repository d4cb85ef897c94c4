"""A small two-author corpus in the fakes of the ports (dict warehouse, in-memory vector store, hashing encoder),
and a scripted LLM that writes questions from the extract it is shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llm_engineering.application.datasets.service import DatasetGenerationConfig, DatasetGenerationService
from llm_engineering.application.preprocessing.features import FeatureEngineering
from llm_engineering.application.rag.retriever import HybridRetriever
from llm_engineering.application.rag.self_query import SelfQuery
from llm_engineering.domain.documents import ArticleDocument, PostDocument
from llm_engineering.infrastructure.kv_cache import MemoryKeyValueCache
from llm_engineering.settings import Settings
from llm_engineering.wiring.container import Container
from tests.fakes import FakeVectorStore, FakeWarehouse, HashingEncoder, ScriptedLLM, WordCounter

TOPICS = {
    "lora": "LoRA adapters train two small low rank matrices per layer while the frozen base model keeps its "
    "weights; rank sixteen on the attention projections trained about two million parameters on my laptop.",
    "fusion": "Reciprocal rank fusion adds one over sixty plus the rank from each list, so BM25 and dense "
    "retrieval never need tuned weights and a document ranked high twice wins.",
    "crawler": "Every crawler write is an upsert keyed on the canonical link with a SHA-256 content hash, so a "
    "second crawl of unchanged pages writes zero documents and duplicates stop growing.",
    "vllm": "Paged attention stores the key value cache in fixed blocks, and continuous batching refills the "
    "batch whenever a sequence finishes, which kept throughput high under sixteen concurrent requests.",
    "tracing": "Tracing every prompt with its token counts showed that seven percent of prompts overflowed the "
    "context window and silently lost their system prompt, so answers looked weird.",
}
EXTRA = {
    "lora": "QLoRA quantizes the frozen weights to four bits, which saves memory but on a CPU every pass "
    "dequantizes them again, so each optimizer step took almost twice as long as plain LoRA.",
    "fusion": "Switching the collection to an HNSW index with m set to sixteen cut the p95 search latency "
    "from ninety milliseconds to eleven milliseconds without hurting recall at ten.",
    "crawler": "A polite crawler waits a second between two hits on the same domain, retries server errors "
    "with exponential backoff, and records every failed link with its reason instead of stopping.",
    "vllm": "On a CPU the server reserves a fixed amount of memory for the cache, and requests beyond the "
    "batch limit wait in a queue until a running sequence completes its answer.",
    "tracing": "Versioning prompt templates next to the code made it possible to compare answer quality "
    "before and after every prompt change on the same fixed set of questions.",
}
AUTHOR = "Ada Lovelace"
OTHER_AUTHOR = "Grace Hopper"

_WORD = re.compile(r"[A-Za-z][A-Za-z-]{4,}")
STOP = {"which", "their", "there", "every", "while", "about", "never", "after", "before", "second"}


def keywords(text: str, count: int = 4, skip: int = 0) -> list[str]:
    seen: list[str] = []
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered not in STOP and lowered not in seen:
            seen.append(lowered)
    return seen[skip : skip + count]


def extract_of(messages) -> str:
    user = messages[-1]["content"]
    return user.split("Text:\n", 1)[1].split("\n\nWrite ", 1)[0]


def scripted_questions(messages) -> dict:
    """Two natural questions built from the extract's own keywords (so round-trip retrieval can find it)."""
    text = extract_of(messages)
    first, second = keywords(text, 3), keywords(text, 3, skip=3)
    return {"questions": [f"How do {' and '.join(first)} work together?", f"Why does {', '.join(second)} matter?"]}


def base_model_answer(messages) -> str:
    return "It depends on many factors, and in general you should read the documentation carefully first."


def make_llm(**kwargs) -> ScriptedLLM:
    kwargs.setdefault("answer", base_model_answer)
    kwargs.setdefault("json_answers", {"instructions": scripted_questions})
    return ScriptedLLM(**kwargs)


class Corpus:
    def __init__(self) -> None:
        self.warehouse = FakeWarehouse()
        self.store = FakeVectorStore()
        self.encoder = HashingEncoder()
        for author in (AUTHOR, OTHER_AUTHOR):
            user, _ = self.warehouse.get_or_create_user(author)
            for topic, text in TOPICS.items():
                body = f"## {topic.title()}\n\n{text}\n\n{EXTRA[topic]}\n\n## Short\n\nToo short on {topic}."
                if author == OTHER_AUTHOR:
                    body = body.replace("my laptop", "a server")
                self.warehouse.upsert_document(
                    ArticleDocument(
                        author_id=user.id,
                        author_full_name=user.full_name,
                        platform="blog",
                        link=f"https://example.org/{user.last_name.lower()}/{topic}",
                        content={"Title": f"{author} on {topic}", "Content": body},
                    )
                )
        user = self.warehouse.find_user(AUTHOR)
        self.warehouse.upsert_document(
            PostDocument(
                author_id=user.id,
                author_full_name=user.full_name,
                platform="linkedin",
                link="https://linkedin.example/posts/ada-1",
                content={"Content": TOPICS["tracing"].replace("seven", "eight") + "\n\n#LLM #Tracing"},
            )
        )
        FeatureEngineering(self.warehouse, self.store, self.encoder, show_progress=False).run("all")

    def service(
        self, tmp_path: Path, llm: ScriptedLLM, cache=None, config: DatasetGenerationConfig | None = None, **kwargs
    ) -> DatasetGenerationService:
        config = config or DatasetGenerationConfig(
            extracts={"min_tokens": 20, "target_tokens": 40, "max_tokens": 80},
            filters={"roundtrip_top_k": 2},
            samples={"test_share": 0.2, "with_context_share": 0.5},
            hf_datasets=False,
        )
        return DatasetGenerationService(
            config=config,
            feature_store=self.store,
            authors=SelfQuery(self.warehouse),
            retriever=HybridRetriever(self.store, self.encoder),
            token_counter=WordCounter(),
            llm=llm,
            rejected_llm=kwargs.pop("rejected_llm", llm),
            cache=cache if cache is not None else MemoryKeyValueCache(),
            store=Container(Settings(data_dir=tmp_path)).artifacts("datasets"),
            show_progress=False,
            **kwargs,
        )


@pytest.fixture
def corpus() -> Corpus:
    return Corpus()
