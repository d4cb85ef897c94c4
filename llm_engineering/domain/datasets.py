"""Fine-tuning datasets made from the author's own writing: extracts, samples, preference pairs, the report.

Pure pydantic models. The rows written to disk (`InstructRow`, `PreferenceRow`) are the contract with training
(`llm_engineering/application/datasets/reader.py`) and evaluation: `messages` / `prompt` are chat messages
(`{role, content}`) in the twin's template (`domain/prompts.py`).
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

# File names inside a dataset folder (training reads the same names).
INSTRUCT_FILES = {"train": "instruct_train.jsonl", "test": "instruct_test.jsonl"}
PREFERENCE_FILES = {"train": "preference_train.jsonl", "test": "preference_test.jsonl"}
REPORT_FILE = "report.json"
INSTRUCT_DATASET_DIR = "instruct"  # HF DatasetDict (save_to_disk) of the instruct rows
PREFERENCE_DATASET_DIR = "preference"
LATEST_POINTER = "latest"  # DATA_DIR/datasets/latest: a text file naming the newest version


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Extract(BaseModel):
    """An answer-sized, contiguous slice of one cleaned document: the author's words, verbatim."""

    document_id: UUID
    position: int  # order inside the document
    text: str
    token_count: int  # in the base model's tokens
    section: str = ""  # the heading (or repository file) it sits under; not part of `text`
    has_code: bool = False
    author: str
    link: str
    title: str
    category: str

    @property
    def hash(self) -> str:
        return text_hash(self.text)

    @property
    def key(self) -> str:
        """Stable id: the document and the text (two documents may share a paragraph)."""
        return text_hash(f"{self.document_id}\n{self.text}")


class Passage(BaseModel):
    """A retrieved passage of another document, kept as a distractor for with-context samples."""

    title: str
    author: str
    link: str
    text: str


class Candidate(BaseModel):
    """One generated instruction for an extract, with what the filters found."""

    instruction: str
    extract_key: str
    judge_score: int | None = None
    roundtrip_rank: int | None = None  # rank of the source document for this instruction (1-based)
    distractors: list[Passage] = Field(default_factory=list)  # retrieved passages of other documents
    context_rejected: str | None = None  # the base model's answer to the with-context prompt (when asked)


class DatasetSample(BaseModel):
    """One instruct row: `messages` is the whole chat the twin is trained on (ending with the answer)."""

    instruction: str
    answer: str
    messages: list[dict[str, str]]
    source_link: str
    author: str
    # Extra fields (the training loader ignores them): what generated it, for inspection and evaluation.
    document_id: str
    title: str = ""
    with_context: bool = False
    context_links: list[str] = Field(default_factory=list)
    judge_score: int | None = None
    # extract: the whole extract, no context | span: the author's sentences that answer, citing [n] |
    # unanswerable: the context does not hold the answer, and the answer says so
    kind: str = "extract"

    def row(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class PreferencePair(BaseModel):
    """One preference row: `prompt` = the chat before the answer; chosen = the author's text; rejected = the base
    model's own answer to the same prompt (no context)."""

    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    source_link: str
    author: str
    instruction: str = ""
    document_id: str = ""
    # no_context: the base model's answer without context | with_context: its RAG answer, kept only when it fails
    # (loops, pastes a header, is empty, cites nothing or nothing that supports it)
    kind: str = "no_context"
    rejected_problem: str | None = None

    def row(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DropReason(StrEnum):
    """Why something was left out. Units: extracts for the first four, instructions next, pairs last."""

    EXTRACT_TOO_SHORT = "extract_too_short"  # a piece under the lower bound that could not be merged
    EXTRACT_TOO_LONG = "extract_too_long"  # an uncuttable block (code, or a sentence) over the upper bound
    DUPLICATE_EXTRACT = "duplicate_extract"  # near-duplicate of an earlier extract
    INVALID_OUTPUT = "invalid_output"  # the LLM's JSON was unusable twice (counted per extract)
    INSTRUCTION_LENGTH = "instruction_length"  # instruction outside the word bounds
    MALFORMED_INSTRUCTION = "malformed_instruction"  # not one question or request (cut off, several, a statement)
    META_REFERENCE = "meta_reference"  # speaks of "the passage / the text / the author ..."
    COPIES_ANSWER = "copies_answer"  # shares a long n-gram with its answer
    ROUNDTRIP_MISS = "roundtrip_miss"  # does not retrieve its own source document in the top k
    JUDGE_LOW = "judge_low"  # judge score under the minimum
    DUPLICATE_INSTRUCTION = "duplicate_instruction"  # near-duplicate of an earlier instruction
    REJECTED_EMPTY = "rejected_empty"  # the base model answered nothing
    REJECTED_OVERLAP = "rejected_overlap"  # the base model's answer overlaps the author's text heavily


class SplitCounts(BaseModel):
    train: int = 0
    test: int = 0


class DatasetReport(BaseModel):
    """Every figure of one generation run (report.json and the ZenML run metadata)."""

    version: str = ""
    output_dir: str = ""
    authors: list[str] = Field(default_factory=list)
    documents: int = 0
    documents_per_split: SplitCounts = Field(default_factory=SplitCounts)
    extracts: int = 0
    extracts_used: int = 0  # after dedup and --max-extracts
    instructions_generated: int = 0
    instruct: SplitCounts = Field(default_factory=SplitCounts)
    preference: SplitCounts = Field(default_factory=SplitCounts)
    with_context_samples: int = 0
    kinds: dict[str, int] = Field(
        default_factory=dict,
        description="instruct samples per kind (extract, span, unanswerable) and preference pairs per kind and "
        "rejected problem (pairs:no_context, pairs:with_context:loops ...)",
    )
    drops: dict[str, int] = Field(default_factory=dict)
    grounding: dict[str, Any] = Field(default_factory=dict)
    llm_calls: dict[str, int] = Field(default_factory=dict)  # made now (cache misses), per kind
    cache_hits: dict[str, int] = Field(default_factory=dict)
    completion_tokens: int = 0
    samples_per_s: float = 0.0
    extracts_per_s: float = 0.0
    wall_s: float = 0.0
    timings_s: dict[str, float] = Field(default_factory=dict)
    tokens: dict[str, Any] = Field(default_factory=dict)  # sample lengths in the base model's tokens
    models: dict[str, str | None] = Field(default_factory=dict)  # instructions / rejected / judge / token counter
    prompt_version: str = ""
    concurrency: int = 0
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def total_llm_calls(self) -> int:
        return sum(self.llm_calls.values())

    def metadata(self) -> dict[str, Any]:
        """The figures for a tracking dashboard (ZenML run metadata): everything but the config echo."""
        data = self.model_dump(mode="json", exclude={"config"})
        data["total_llm_calls"] = self.total_llm_calls
        return data

    def summary_rows(self) -> list[tuple[str, Any]]:
        drops = ", ".join(f"{k}={v}" for k, v in sorted(self.drops.items()) if v) or "none"
        grounding = self.grounding
        return [
            ("output", self.output_dir),
            ("authors", ", ".join(self.authors)),
            (
                "documents (train / test)",
                f"{self.documents} ({self.documents_per_split.train} / {self.documents_per_split.test})",
            ),  # fmt: skip
            ("extracts (used)", f"{self.extracts} ({self.extracts_used})"),
            ("instructions generated", self.instructions_generated),
            ("instruct train / test", f"{self.instruct.train} / {self.instruct.test}"),
            ("  with context", self.with_context_samples),
            ("preference train / test", f"{self.preference.train} / {self.preference.test}"),
            ("drops", drops),
            (
                "grounding (fully grounded)",
                f"{grounding.get('fully_grounded_share', 0.0):.3f} of {grounding.get('answers', 0)} answers "
                f"(mean 8-gram share {grounding.get('mean_share', 0.0):.3f})",
            ),
            ("LLM calls (cache hits)", f"{self.total_llm_calls} ({sum(self.cache_hits.values())})"),
            ("samples/s", f"{self.samples_per_s:.2f} (concurrency {self.concurrency}, {self.wall_s:.1f} s)"),
            ("models", ", ".join(f"{k}={v}" for k, v in self.models.items() if v)),
        ]
