"""Dataset generation: the author's cleaned documents → extracts → back-translated instructions → filters →
instruct samples (some with RAG context) and preference pairs → split by document → a versioned folder.

Stages (each one a ZenML step in `pipelines/generate_datasets.py`; `run` does them all in this process):

1. `load`      cleaned documents of the authors from the feature store (never re-crawled);
2. `extract`   answer-sized extracts (base-model tokens), near-duplicates removed, optionally capped;
3. `generate`  per extract: instructions (LLM, cached), per-instruction filters, round-trip retrieval, optional
               judge, the base model's rejected answers (LLM, cached); then instruction dedup in extract order.
               Extracts run concurrently, LLM requests bounded by one semaphore, so vLLM batches them
               (continuous batching) with no barrier between the stages;
4. `write`     rows, split by source document, grounding check, report, all written atomically.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm.auto import tqdm

from llm_engineering.application.datasets.cache import GenerationCache
from llm_engineering.application.datasets.extracts import ExtractConfig, ExtractSplitter
from llm_engineering.application.datasets.filters import (
    FilterConfig,
    NearDuplicateIndex,
    copies_answer,
    instruction_length_ok,
    rejected_problem,
    speaks_of_source,
    well_formed,
)
from llm_engineering.application.datasets.generation import GenerationConfig, Generators
from llm_engineering.application.datasets.grounding import grounding_summary
from llm_engineering.application.datasets.output import write_dataset_files
from llm_engineering.application.datasets.samples import (
    SampleConfig,
    context_preference_pair,
    context_prompt,
    header_preference_pair,
    instruct_sample,
    preference_pair,
    split_documents,
    wants_context,
)
from llm_engineering.application.evaluation.retrieval import CHUNKS_PER_DOCUMENT, rank_of
from llm_engineering.application.jsonl import read_jsonl_objects
from llm_engineering.application.ports import (
    LLM,
    ArtifactStore,
    AuthorDirectory,
    FeatureStore,
    KeyValueCache,
    PromptTokenCounter,
)
from llm_engineering.application.ports import Retriever as RetrieverPort
from llm_engineering.application.rag.fusion import dedupe_by_document
from llm_engineering.domain.chunks import CleanedDocument
from llm_engineering.domain.datasets import (
    INSTRUCT_FILES,
    PREFERENCE_FILES,
    Candidate,
    DatasetReport,
    DropReason,
    Extract,
    Passage,
    SplitCounts,
)
from llm_engineering.domain.errors import ConfigurationError, UnknownAuthorError
from llm_engineering.domain.prompts import DATASET_PROMPT_VERSION, render_chatml
from llm_engineering.domain.types import DOCUMENT_CATEGORIES

FEATURE_PIPELINE_FIX = (
    "run the feature pipeline first: `poe run-feature-engineering-pipeline --config configs/feature_engineering.yaml`"
)


class DatasetLLMEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    model: str


class DatasetGenerationConfig(BaseModel):
    """configs/generate_datasets.yaml, `parameters:` (every key checked; a typo fails with its name)."""

    model_config = ConfigDict(extra="forbid")

    authors: list[str] = Field(default_factory=lambda: ["all"])
    categories: list[str] = Field(default_factory=lambda: [str(c) for c in DOCUMENT_CATEGORIES])
    max_extracts: int | None = Field(default=None, ge=1, description="Cap (spread over documents); None: all")
    concurrency: int = Field(default=16, ge=1, description="LLM requests in flight (vLLM batches them)")
    preference: bool = True
    hf_datasets: bool = Field(default=True, description="Also save HF DatasetDicts (instruct/, preference/)")
    extracts: ExtractConfig = Field(default_factory=ExtractConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    samples: SampleConfig = Field(default_factory=SampleConfig)
    llm: DatasetLLMEndpoint | None = Field(
        default=None,
        description="The endpoint that writes instructions and rejected answers for this run (the twin refresh "
        "serves the base model beside the production twin); unset: DATASET_LLM_* / the serving LLM",
    )

    @field_validator("authors", "categories", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        known = [str(c) for c in DOCUMENT_CATEGORIES]
        unknown = [c for c in value if c not in known]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; choose from {known}")
        return value


class SourceDocuments(BaseModel):
    authors: list[str]
    documents: list[CleanedDocument]


class ExtractSet(BaseModel):
    extracts: list[Extract]  # the ones generation uses
    total: int  # before de-duplication and the cap
    drops: dict[str, int] = Field(default_factory=dict)


class Generation(BaseModel):
    """What the LLM stage produced: kept candidates (in extract order) with their rejected answers."""

    candidates: list[Candidate]
    rejected: list[str | None]  # aligned with candidates; None: no pair (dropped or preference off)
    instructions_generated: int
    drops: dict[str, int]
    llm_calls: dict[str, int]
    cache_hits: dict[str, int]
    completion_tokens: int
    timeouts: int = 0
    wall_s: float
    timings_s: dict[str, float]
    models: dict[str, str | None]
    concurrency: int


class DatasetGenerationService:
    def __init__(
        self,
        config: DatasetGenerationConfig,
        feature_store: FeatureStore,
        authors: AuthorDirectory,
        retriever: RetrieverPort,
        token_counter: PromptTokenCounter,
        llm: LLM,
        rejected_llm: LLM,
        cache: KeyValueCache,
        store: ArtifactStore,
        judge: LLM | None = None,
        show_progress: bool = True,
    ) -> None:
        self.config = config
        self.feature_store = feature_store
        self.authors = authors
        self.retriever = retriever
        self.counter = token_counter
        self.llm = llm
        self.rejected_llm = rejected_llm
        self.judge = judge
        self.cache = cache
        self.store = store
        self.show_progress = show_progress
        self._retrieval_s = 0.0

    # --- 1. documents --------------------------------------------------------------------------------------------
    def resolve_authors(self, requested: Sequence[str] | None = None) -> tuple[list[str], bool]:
        """(full names, explicit?) — `requested` (e.g. --author) overrides the config; "all" = the warehouse's."""
        names = [n for n in (requested or self.config.authors) if n and n.strip()]
        if not names or any(n.strip().lower() == "all" for n in names):
            known = sorted(self.authors.known_authors(fresh=True))
            if not known:
                raise ConfigurationError(
                    "the warehouse has no authors: import (`poe run-import-data-warehouse-from-json --data-dir DIR`) "
                    f"or crawl (`poe run-digital-data-etl`) their writing, then {FEATURE_PIPELINE_FIX}"
                )
            return known, False
        resolved = []
        for name in names:
            canonical = self.authors.canonical(name)
            if canonical is None:
                raise UnknownAuthorError(name, self.authors.known_authors(fresh=True))
            if canonical not in resolved:
                resolved.append(canonical)
        return resolved, True

    def load(self, requested: Sequence[str] | None = None) -> SourceDocuments:
        authors, explicit = self.resolve_authors(requested)
        categories = set(self.config.categories)
        documents: list[CleanedDocument] = []
        kept_authors: list[str] = []
        for author in authors:
            found = [d for d in self.feature_store.cleaned_documents(author=author) if str(d.category) in categories]
            if not found:
                message = (
                    f"no cleaned documents for author {author!r} in the feature store "
                    f"(categories: {', '.join(sorted(categories))}): {FEATURE_PIPELINE_FIX}"
                )
                if explicit:
                    raise ConfigurationError(message)
                logger.warning(message)
                continue
            kept_authors.append(author)
            documents += sorted(found, key=lambda d: (str(d.category), d.link))
        if not documents:
            raise ConfigurationError(
                f"no cleaned documents for any author ({', '.join(authors)}) in the feature store: "
                f"{FEATURE_PIPELINE_FIX}"
            )
        return SourceDocuments(authors=kept_authors, documents=documents)

    # --- 2. extracts ---------------------------------------------------------------------------------------------
    def extract(self, source: SourceDocuments, max_extracts: int | None = None) -> ExtractSet:
        result = ExtractSplitter(self.counter, self.config.extracts).split(source.documents)
        drops: Counter[str] = Counter(result.drops)
        index = NearDuplicateIndex(self.config.filters.duplicate_extract_jaccard, shingle=3)
        unique: list[Extract] = []
        for extract in result.extracts:
            if index.add(extract.text):
                unique.append(extract)
            else:
                drops[DropReason.DUPLICATE_EXTRACT] += 1
        cap = max_extracts or self.config.max_extracts
        used = spread_cap(unique, cap) if cap else unique
        return ExtractSet(extracts=used, total=len(result.extracts), drops=_plain(drops))

    # --- 3. generation -------------------------------------------------------------------------------------------
    def generate(self, extracts: ExtractSet) -> Generation:
        """`agenerate` in an event loop of its own; the LLM clients' connections belong to that loop, so they are
        released before it closes (the clients reconnect lazily in the next loop)."""

        async def run() -> Generation:
            try:
                return await self.agenerate(extracts)
            finally:
                for llm in {id(x): x for x in (self.llm, self.rejected_llm, self.judge) if x is not None}.values():
                    await llm.aclose()

        return asyncio.run(run())

    async def agenerate(self, extracts: ExtractSet) -> Generation:
        config = self.config
        cache = GenerationCache(self.cache)
        generators = Generators(self.llm, self.rejected_llm, cache, config.generation, judge=self.judge)
        semaphore = asyncio.Semaphore(config.concurrency)
        drops: Counter[str] = Counter()
        timings: dict[str, float] = {}
        self._retrieval_s = 0.0
        started = time.perf_counter()
        # Retrieval (query embedding + store search) runs on one worker thread, off the event loop.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="roundtrip") as executor:
            progress = tqdm(
                total=len(extracts.extracts), desc="extracts", unit="extract", disable=not self.show_progress
            )
            try:
                per_extract = await _all(
                    self._process_extract(extract, generators, semaphore, executor, progress)
                    for extract in extracts.extracts
                )
            finally:
                progress.close()
        generated = 0
        pending: list[tuple[Candidate, str | None]] = []
        for outcome in per_extract:  # extract order: deterministic whatever order the requests finished in
            generated += outcome[0]
            drops.update(outcome[1])
            pending += outcome[2]
        duplicates = NearDuplicateIndex(config.filters.duplicate_instruction_jaccard)
        by_key = {e.key: e for e in extracts.extracts}
        kept: list[Candidate] = []
        rejected: list[str | None] = []
        for candidate, answer in pending:
            if not duplicates.add(candidate.instruction):
                drops[DropReason.DUPLICATE_INSTRUCTION] += 1
                continue
            kept.append(candidate)
            problem = None if answer is None else rejected_problem(answer, by_key[candidate.extract_key].text,
                                                                    config.filters)  # fmt: skip
            if problem is not None:
                drops[problem] += 1
            rejected.append(answer if problem is None else None)
        timings["retrieval"] = self._retrieval_s
        wall = time.perf_counter() - started
        return Generation(
            candidates=kept,
            rejected=rejected,
            instructions_generated=generated,
            drops=_plain(drops),
            llm_calls=dict(generators.stats.calls),
            cache_hits=dict(cache.hits),
            completion_tokens=generators.stats.completion_tokens,
            timeouts=generators.stats.timeouts,
            wall_s=wall,
            timings_s={k: round(v, 3) for k, v in timings.items()},
            models=self.models(),
            concurrency=config.concurrency,
        )

    def models(self) -> dict[str, str | None]:
        return {
            "instructions": f"{self.llm.model} @ {self.llm.base_url}",
            "rejected": f"{self.rejected_llm.model} @ {self.rejected_llm.base_url}" if self.config.preference else None,
            "judge": f"{self.judge.model} @ {self.judge.base_url}" if self.judge is not None else None,
            "token_counter": self.counter.name,
        }

    async def _process_extract(
        self,
        extract: Extract,
        generators: Generators,
        semaphore: asyncio.Semaphore,
        executor: ThreadPoolExecutor,
        progress: Any,
    ) -> tuple[int, Counter[str], list[tuple[Candidate, str | None]]]:
        filters = self.config.filters
        drops: Counter[str] = Counter()
        kept: list[Candidate] = []
        async with semaphore:
            questions = await generators.instructions(extract)
        if questions is None:
            drops[DropReason.INVALID_OUTPUT] += 1
            progress.update(1)
            return 0, drops, kept
        for question in questions:
            if not instruction_length_ok(question, filters):
                drops[DropReason.INSTRUCTION_LENGTH] += 1
                continue
            if not well_formed(question):
                drops[DropReason.MALFORMED_INSTRUCTION] += 1
                continue
            if speaks_of_source(question):
                drops[DropReason.META_REFERENCE] += 1
                continue
            if copies_answer(question, extract.text, filters.copy_ngram):
                drops[DropReason.COPIES_ANSWER] += 1
                continue
            candidate = Candidate(instruction=question, extract_key=extract.key)
            if filters.roundtrip or self.config.samples.with_context_share > 0:
                loop = asyncio.get_running_loop()
                rank, distractors = await loop.run_in_executor(executor, self._roundtrip, question, extract)
                if filters.roundtrip and rank is None:
                    drops[DropReason.ROUNDTRIP_MISS] += 1
                    continue
                candidate.roundtrip_rank = rank
                candidate.distractors = distractors
            if generators.judge_llm is not None:
                async with semaphore:
                    candidate.judge_score = await generators.judge(question, extract.text)
                if candidate.judge_score is not None and candidate.judge_score < filters.judge_min_score:
                    drops[DropReason.JUDGE_LOW] += 1
                    continue
            kept.append(candidate)
        answers: list[str | None] = [None] * len(kept)
        if self.config.preference and kept:
            # Asked as soon as the instruction passed its filters: no barrier between the stages, so the server's
            # batch stays full (a near-duplicate found later costs one cached answer, nothing else).
            async def answer(instruction: str) -> str:
                async with semaphore:
                    return await generators.rejected(instruction)

            answers = list(await asyncio.gather(*(answer(c.instruction) for c in kept)))
            if self.config.generation.context_rejected:
                # What the base model really does with the with-context prompt the twin is trained on: its failures
                # (loops, pasted headers, empty or unsupported answers) become the rejected side of a pair.
                async def in_context(candidate: Candidate) -> None:
                    messages, _, passages = context_prompt(candidate, extract, self.config.samples, self.counter)
                    async with semaphore:
                        candidate.context_rejected = await generators.rejected_in_context(
                            messages, len(passages), candidate.instruction
                        )

                await asyncio.gather(*(in_context(c) for c in kept if wants_context(c, self.config.samples)))
        progress.update(1)
        return len(questions), drops, list(zip(kept, answers, strict=True))

    def _roundtrip(self, question: str, extract: Extract) -> tuple[int | None, list[Passage]]:
        """The source document's rank among the top-k documents retrieved for the question, and passages of other
        documents from the same search (distractors for with-context samples)."""
        started = time.perf_counter()
        filters = self.config.filters
        author = extract.author if filters.roundtrip_author_filter else None
        result = self.retriever.search(question, k=filters.roundtrip_top_k * CHUNKS_PER_DOCUMENT, author=author)
        # Equal fused scores come back in any order: break ties by chunk id so a re-run builds the same samples.
        ordered = sorted(result.hits, key=lambda h: (-round(h.score, 9), str(h.chunk.id)))
        result = result.model_copy(update={"hits": [h.model_copy(update={"rank": i}) for i, h in
                                                    enumerate(ordered, start=1)]})  # fmt: skip
        rank = rank_of(result, extract.link, filters.roundtrip_top_k)
        distractors = [
            Passage(title=h.chunk.title, author=h.chunk.author_full_name, link=h.chunk.link, text=h.chunk.text)
            for h in dedupe_by_document(result.hits)
            if str(h.chunk.document_id) != str(extract.document_id)
        ][: max(0, self.config.samples.context_passages - 1)]
        self._retrieval_s += time.perf_counter() - started
        return rank, distractors

    # --- 4. rows, split, report, files ---------------------------------------------------------------------------
    def write(
        self,
        source: SourceDocuments,
        extracts: ExtractSet,
        generation: Generation,
        output: Path | str | None = None,
    ) -> DatasetReport:
        config = self.config
        by_key = {e.key: e for e in extracts.extracts}
        texts = {str(d.id): d.text for d in source.documents}
        samples, pairs = [], []
        for candidate, rejected in zip(generation.candidates, generation.rejected, strict=True):
            extract = by_key[candidate.extract_key]
            sample = instruct_sample(candidate, extract, config.samples, self.counter)
            samples.append(sample)
            if rejected is not None:
                pairs.append(preference_pair(candidate, extract, rejected))
            if config.preference and sample.with_context and candidate.context_rejected is not None:
                pair = context_preference_pair(candidate, sample)
                if pair is not None:
                    pairs.append(pair)
            if config.preference and config.samples.header_pairs:
                pair = header_preference_pair(sample)
                if pair is not None:
                    pairs.append(pair)
        documents_by_author: dict[str, set[str]] = {}
        for sample in samples:
            documents_by_author.setdefault(sample.author, set()).add(sample.document_id)
        previous = self.previous_split() if config.samples.sticky_split else {}
        test_ids = split_documents(documents_by_author, config.samples.test_share, config.samples.seed, previous)
        instruct = {"train": [], "test": []}
        for sample in samples:
            instruct["test" if sample.document_id in test_ids else "train"].append(sample.row())
        preference = {"train": [], "test": []}
        for pair in pairs:
            preference["test" if pair.document_id in test_ids else "train"].append(pair.row())

        # Unanswerable samples say so in a fixed sentence: grounding is measured on the answers that quote the author.
        grounding = grounding_summary((s.answer, texts[s.document_id]) for s in samples if s.kind != "unanswerable")
        kinds = Counter(s.kind for s in samples)
        kinds.update(f"pairs:{p.kind}" + (f":{p.rejected_problem}" if p.rejected_problem else "") for p in pairs)
        used_documents = {d for ids in documents_by_author.values() for d in ids}
        drops = Counter(extracts.drops)
        drops.update(generation.drops)
        target = Path(output) if output else self.store.root / self.store.next_version()
        report = DatasetReport(
            version=target.name,
            output_dir=str(target),
            authors=source.authors,
            documents=len(source.documents),
            documents_per_split=SplitCounts(train=len(used_documents - test_ids), test=len(used_documents & test_ids)),
            extracts=extracts.total,
            extracts_used=len(extracts.extracts),
            instructions_generated=generation.instructions_generated,
            instruct=SplitCounts(train=len(instruct["train"]), test=len(instruct["test"])),
            preference=SplitCounts(train=len(preference["train"]), test=len(preference["test"])),
            with_context_samples=sum(1 for s in samples if s.with_context),
            kinds=dict(sorted(kinds.items())),
            drops={str(k): v for k, v in sorted(drops.items()) if v},
            grounding=grounding,
            llm_calls=generation.llm_calls,
            cache_hits=generation.cache_hits,
            completion_tokens=generation.completion_tokens,
            samples_per_s=round(len(samples) / generation.wall_s, 3) if generation.wall_s > 0 else 0.0,
            extracts_per_s=round(len(extracts.extracts) / generation.wall_s, 3) if generation.wall_s > 0 else 0.0,
            wall_s=round(generation.wall_s, 3),
            timings_s=generation.timings_s,
            tokens=self._token_stats(samples, pairs),
            models=generation.models,
            prompt_version=DATASET_PROMPT_VERSION,
            concurrency=generation.concurrency,
            config=config.model_dump(mode="json"),
        )
        if generation.timeouts:
            report.drops["llm_timeouts"] = generation.timeouts

        def fill(folder: Path, version: str) -> None:
            write_dataset_files(folder, instruct, preference, report.model_dump(mode="json"), config.hf_datasets)

        if output:
            self.store.write_to(target, fill)
        else:
            self.store.write(fill, version=target.name)
        return report

    def previous_split(self) -> dict[str, str]:
        """document id -> "train" | "test" in the latest dataset version (empty when there is none)."""
        folder = self.store.resolve(None)
        if folder is None:
            return {}
        sides: dict[str, str] = {}
        for split in ("train", "test"):
            for name in (INSTRUCT_FILES[split], PREFERENCE_FILES[split]):
                rows = read_jsonl_objects(Path(folder) / name)  # an optional file: no rows when missing
                sides.update((str(row["document_id"]), split) for row in rows if row.get("document_id"))
        return sides

    def _token_stats(self, samples: Sequence[Any], pairs: Sequence[Any]) -> dict[str, Any]:
        """Sample lengths in the base model's tokens (the whole rendered chat), for sizing training max_length."""

        def stats(values: list[int]) -> dict[str, int]:
            if not values:
                return {}
            ordered = sorted(values)
            return {
                "p50": int(statistics.median(ordered)),
                "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
                "max": ordered[-1],
            }

        plain = [self.counter.count(render_chatml(s.messages)) for s in samples if not s.with_context]
        context = [self.counter.count(render_chatml(s.messages)) for s in samples if s.with_context]
        preference = [self.counter.count(render_chatml([*p.prompt, {"role": "assistant", "content": p.chosen}]))
                      for p in pairs]  # fmt: skip
        return {
            "counter": self.counter.name,
            "instruct_no_context": stats(plain),
            "instruct_with_context": stats(context),
            "preference_prompt_plus_chosen": stats(preference),
        }

    def close(self) -> None:
        """Release the generation cache (the adapters belong to the composition root)."""
        self.cache.close()

    # --- all stages ----------------------------------------------------------------------------------------------
    def run(
        self,
        authors: Sequence[str] | None = None,
        output: Path | str | None = None,
        max_extracts: int | None = None,
    ) -> DatasetReport:
        source = self.load(authors)
        extracts = self.extract(source, max_extracts)
        generation = self.generate(extracts)
        return self.write(source, extracts, generation, output)


def spread_cap(extracts: Sequence[Extract], cap: int) -> list[Extract]:
    """At most `cap` extracts, taken round-robin over documents (the first of each, then the second ...), kept in
    document order, so a capped run still covers many documents (and both splits)."""
    if len(extracts) <= cap:
        return list(extracts)
    order = {}
    for extract in extracts:
        order.setdefault(str(extract.document_id), len(order))
    ranked = sorted(range(len(extracts)), key=lambda i: (extracts[i].position, order[str(extracts[i].document_id)]))
    chosen = sorted(ranked[:cap])
    return [extracts[i] for i in chosen]


async def _all(coroutines) -> list[Any]:
    """Run concurrently, results in order; the first failure cancels the rest and is raised as itself."""
    tasks: list[asyncio.Task] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
    except BaseExceptionGroup as failures:
        first = failures.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        if isinstance(first, Exception):
            raise first from None
        raise
    return [t.result() for t in tasks]


def _plain(counter: Counter[str]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(counter.items()) if v}
