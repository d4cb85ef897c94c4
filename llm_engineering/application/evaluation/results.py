"""What an evaluation run measures, as small pydantic models that travel between ZenML steps and into the report.

Metric keys are flat, `<section>.<name>` (e.g. `voice.perplexity`, `rag.rouge_l`); `METRICS` says for each what it
means and which direction is better, so the report, the promotion rule and the trackers agree.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field


class MetricInfo(BaseModel):
    label: str
    higher_is_better: bool
    description: str
    unit: str = ""


def _m(label: str, higher: bool, description: str, unit: str = "") -> MetricInfo:
    return MetricInfo(label=label, higher_is_better=higher, description=description, unit=unit)


METRICS: dict[str, MetricInfo] = {
    # voice, judge-free
    "voice.perplexity": _m("held-out perplexity", False, "exp(mean NLL) of the author's test answers (answer tokens)"),
    "voice.new_writing_perplexity": _m(
        "held-out perplexity, new writing",
        False,
        "the same on the test answers of the new and changed documents only (a refresh's focus)",
    ),
    "voice.nll_per_token": _m("NLL / token", False, "mean negative log-likelihood of the author's test answers"),
    "voice.dpo_reward_accuracy": _m(
        "DPO reward accuracy", True, "share of test pairs with implicit reward(chosen) > reward(rejected) vs reference"
    ),
    "voice.dpo_reward_margin": _m("DPO reward margin", True, "mean beta * (log-ratio chosen - log-ratio rejected)"),
    "voice.preference_accuracy": _m(
        "prefers author (log-prob)", True, "share of test pairs where log p(author's text) > log p(base's text)"
    ),
    "style.distance": _m("style distance", False, "mean of the stylometric components below (0 = author's style)"),
    "style.function_word_jsd": _m("function-word JSD", False, "Jensen-Shannon divergence of function-word use"),
    "style.sentence_length_gap": _m("sentence-length gap", False, "relative gap of mean words per sentence"),
    "style.sentence_length_std_gap": _m("sentence-length spread gap", False, "relative gap of its std deviation"),
    "style.mattr_gap": _m("vocabulary richness gap", False, "relative gap of the moving-average type-token ratio"),
    "style.word_length_gap": _m("word-length gap", False, "relative gap of mean word length"),
    # judge
    "judge.accuracy": _m("judge accuracy (1-3)", True, "LLM judge: factual accuracy and completeness"),
    "judge.style": _m("judge style (1-3)", True, "LLM judge: accessible blog/social-media style"),
    "judge.win_rate_vs_author": _m(
        "win rate vs author", True, "pairwise judge: share of consistent verdicts preferring the model's answer"
    ),
    "judge.agreement": _m("judge agreement (swap)", True, "share of pairs whose verdict survives swapping A and B"),
    "judge.missing_rate": _m("judge missing", False, "share of judge calls without a valid verdict after a retry"),
    # RAG
    "rag.faithfulness": _m("faithfulness (Ragas)", True, "claims of the answer supported by the retrieved context"),
    "rag.answer_relevancy": _m("answer relevancy (Ragas)", True, "questions regenerated from the answer match it"),
    "rag.context_precision": _m("context precision (Ragas)", True, "LLM: relevant contexts ranked first"),
    "rag.context_recall": _m("context recall (Ragas)", True, "LLM: reference claims found in the context"),
    "rag.nonllm_context_precision": _m(
        "context precision (non-LLM)", True, "average precision of retrieved chunks matching the reference chunks"
    ),
    "rag.nonllm_context_recall": _m("context recall (non-LLM)", True, "reference chunks matched by a retrieved one"),
    "rag.id_context_precision": _m("document precision", True, "retrieved passages from the source document"),
    "rag.id_context_recall": _m("document recall", True, "source document among the retrieved passages"),
    "rag.string_similarity": _m("string similarity", True, "1 - normalised Levenshtein distance to the reference"),
    "rag.rouge_l": _m("ROUGE-L", True, "longest-common-subsequence F1 against the reference answer"),
    "rag.rouge_1": _m("ROUGE-1", True, "unigram F1 against the reference answer"),
    "rag.cited_answer_rate": _m("answers citing [n]", True, "share of answers with at least one citation"),
    "rag.citation_valid_rate": _m("valid citations", True, "cited [n] that exist among the passages"),
    "rag.citation_supported_rate": _m(
        "supported citations", True, "cited sentences whose passage holds most of their content words"
    ),
    # answers worth reading (application/evaluation/answer_quality.py)
    "answer.degenerate_rate": _m(
        "degenerate answers", False, "model answers repeating a sentence or a 4-gram three times (before the guard)"
    ),
    "answer.served_degenerate_rate": _m(
        "degenerate as served", False, "answers still repeating after the serving guard (what a user sees)"
    ),
    "answer.copied_header_rate": _m(
        "copied passage headers", False, "model answers pasting a '[n] Title (Author)' line (before the guard)"
    ),
    "answer.served_copied_header_rate": _m(
        "copied headers as served", False, "answers still showing a pasted passage header (what a user sees)"
    ),
    "answer.empty_rate": _m("empty answers", False, "answers of fewer than three words"),
    "answer.fact_recall": _m("reference-fact recall", True, "content words of the reference answer in the answer"),
    "answer.cited_rate": _m("answers citing a source", True, "answers with at least one [n]"),
    "answer.supported_rate": _m(
        "answers with a supported citation", True, "answers with a cited sentence its passage supports"
    ),
    "answer.attributed_rate": _m(
        "answers cited by attribution",
        False,
        "answers where the service cited a sentence quoting a passage word for word (the model left [n] out)",
    ),
    "answer.answered": _m("questions answered", True, "RAG questions answered without an error"),
    # speed
    "speed.latency_p50_s": _m("latency p50", False, "RAG answer generation, seconds", "s"),
    "speed.latency_p95_s": _m("latency p95", False, "RAG answer generation, seconds", "s"),
    "speed.tokens_per_s": _m("tokens/s", True, "completion tokens per second of generation, per request", "tok/s"),
    # retrieval (model-independent)
    "retrieval.hit@1": _m("hit@1", True, "source document ranked first"),
    "retrieval.hit@5": _m("hit@5", True, "source document in the top 5"),
    "retrieval.hit@10": _m("hit@10", True, "source document in the top 10"),
    "retrieval.mrr@10": _m("MRR@10", True, "mean reciprocal rank of the source document"),
}


def metric_info(key: str) -> MetricInfo:
    return METRICS.get(key) or MetricInfo(label=key, higher_is_better=True, description="")


def finite(value: Any) -> float | None:
    """A float that can be compared and serialised (None for missing, NaN, inf, bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def mean(values: list[Any]) -> float | None:
    numbers = [v for v in (finite(x) for x in values) if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


class ModelUnderTest(BaseModel):
    """One model of the comparison: a label, what was asked for, and the checkpoint it resolved to."""

    name: str = Field(description="label in the report: base | sft | twin | production | a custom name")
    spec: str = Field(description="what was asked for: base, sft, twin, llm-twin:v0002, a path ...")
    path: str = Field(description="checkpoint folder (config.json inside)")
    registry_name: str | None = None
    registry_version: str | None = None
    voice_only: bool = Field(default=False, description="only the judge-free scorer metrics (e.g. production)")
    generation: dict[str, Any] | None = Field(
        default=None, description="its decoding defaults (domain GenerationDefaults; None: the domain defaults)"
    )


class Skipped(BaseModel):
    metric: str
    reason: str
    models: list[str] = Field(default_factory=list)


class VoiceResult(BaseModel):
    model: str
    metrics: dict[str, float | None] = Field(default_factory=dict)
    rows: list[dict[str, Any]] = Field(default_factory=list)  # per test answer / pair


class GeneratedAnswer(BaseModel):
    id: str
    kind: str  # voice | rag
    question: str
    prompt: list[dict[str, str]] = Field(default_factory=list)
    answer: str = ""
    reference: str | None = None
    contexts: list[str] = Field(default_factory=list)
    context_links: list[str] = Field(default_factory=list)
    reference_contexts: list[str] = Field(default_factory=list)
    reference_links: list[str] = Field(default_factory=list)
    latency_s: float | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    notes: list[str] = Field(default_factory=list, description="the RAG service's notes (e.g. the guard's)")
    metrics: dict[str, Any] = Field(default_factory=dict)


class GenerationResult(BaseModel):
    model: str
    backend: str
    served_as: str = ""
    metrics: dict[str, float | None] = Field(default_factory=dict)
    voice_answers: list[GeneratedAnswer] = Field(default_factory=list)
    rag_answers: list[GeneratedAnswer] = Field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0


class JudgeResult(BaseModel):
    model: str
    metrics: dict[str, float | None] = Field(default_factory=dict)
    rows: list[dict[str, Any]] = Field(default_factory=list)
    ragas_rows: list[dict[str, Any]] = Field(
        default_factory=list, description="per RAG answer (by id): Ragas LLM scores and errors"
    )


class JudgePhase(BaseModel):
    status: str = "skipped"  # ok | skipped
    reason: str = ""
    base_url: str = ""
    model: str = ""
    warning: str = ""
    results: list[JudgeResult] = Field(default_factory=list)
    ragas: dict[str, Any] = Field(default_factory=dict)
    skipped: list[Skipped] = Field(default_factory=list)
    wall_s: float = 0.0


class PromotionDecision(BaseModel):
    enabled: bool = True
    candidate: str = ""
    candidate_version: str | None = None
    metric: str = ""
    higher_is_better: bool = False
    candidate_value: float | None = None
    baseline: str = Field(default="", description="what it was compared with: production vX or base")
    baseline_value: float | None = None
    promote: bool = False
    applied: bool = False
    reason: str = ""
    deciding_rule: str = Field(default="", description="the rule that decided (the first one failed, else 'all')")
    rules: list[dict[str, Any]] = Field(
        default_factory=list, description="each rule of the gate: name, passed, candidate/baseline values, tolerance"
    )
    zenml: dict[str, Any] | None = None


class JudgeEndpoint(BaseModel):
    """The judge for this run: the LLM port (None when unusable) and what to say about it."""

    model_config = {"arbitrary_types_allowed": True}

    llm: Any = None
    base_url: str = ""
    model: str = ""
    warning: str = ""
    reason: str = ""
