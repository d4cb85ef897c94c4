"""The evaluation run config (configs/evaluating.yaml): one typed object, every key checked. Pure pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_engineering.application.config_files import read_yaml_file
from llm_engineering.domain.errors import ConfigurationError

RAGAS_LLM_METRICS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VoiceSection(_Section):
    max_samples: int = Field(default=64, ge=1, description="instruct test answers scored (perplexity)")
    max_pairs: int = Field(default=64, ge=1, description="preference test pairs scored (DPO reward accuracy)")
    max_length: int = Field(default=1024, ge=32, description="tokens per scored sequence (prompt + answer)")
    batch_size: int = Field(default=4, ge=1)
    dpo_beta: float = Field(default=0.1, gt=0, description="scales the implicit reward margin (as in DPO)")
    reference_model: str = Field(default="base", description="reference policy of the DPO implicit reward")
    threads: int | None = Field(default=None, ge=1, description="torch threads (default: torch's choice)")
    focus_documents: list[str] = Field(
        default_factory=list,
        description="document ids of the author's new writing (a refresh passes its new and changed documents): "
        "their held-out answers are scored first and apart (voice.new_writing_perplexity), and the rule against "
        "the production twin uses that number",
    )


class GenerationSection(_Section):
    backend: Literal["auto", "vllm", "transformers"] = Field(
        default="auto", description="auto: a vLLM server per model when the vLLM environment exists"
    )
    max_samples: int = Field(default=16, ge=1, description="instruct test prompts answered by every model")
    max_tokens: int = Field(default=160, ge=8)
    concurrency: int = Field(default=8, ge=1, description="requests in flight (vLLM batches them)")
    port: int | None = Field(default=None, description="port of the per-model vLLM server (default: a free one)")
    timeout_s: float = Field(default=300.0, gt=0)
    startup_timeout_s: float = Field(default=900.0, gt=0, description="wait for each model's vLLM server")


class JudgeSection(_Section):
    enabled: bool = True
    max_samples: int = Field(default=8, ge=1, description="generated answers judged per model")
    pairwise: bool = Field(default=True, description="position-swapped pairwise comparison with the author")
    max_tokens: int = Field(default=48, ge=8)
    timeout_s: float = Field(default=60.0, gt=0)
    start_local_server: bool = Field(
        default=True, description="default judge (the local serving LLM) not running: start it for the run"
    )


class RagSection(_Section):
    enabled: bool = True
    kinds: list[str] = Field(
        default_factory=list,
        description="question kinds answered by the models (empty: every question with a reference answer); "
        "retrieval metrics use every question",
    )
    max_questions: int | None = Field(
        default=None, ge=1, description="QA questions answered per model (None: all with a reference answer)"
    )
    k: int = Field(default=3, ge=1, description="passages in the answer's context")
    max_answer_tokens: int = Field(default=128, ge=8, description="cap; each question gets its model's length")
    retrieval_k: int = Field(default=10, ge=1)
    retrieval_modes: list[str] = Field(default_factory=lambda: ["hybrid"])
    repetition_guard: bool = Field(default=True, description="answers pass the serving guard, as /rag answers do")
    citation_support_threshold: float = Field(default=0.5, ge=0, le=1)
    similarity_threshold: float = Field(default=0.5, ge=0, le=1, description="non-LLM context match threshold")


class RagasSection(_Section):
    enabled: bool = True
    llm_metrics: list[str] = Field(default_factory=lambda: list(RAGAS_LLM_METRICS))
    max_questions: int = Field(default=2, ge=0, description="questions per model scored by LLM metrics (slow)")
    timeout_s: float = Field(default=90.0, gt=0, description="per metric and question; past it: NaN (failed)")
    max_tokens: int = Field(default=384, ge=16)
    budget_s: float = Field(default=600.0, gt=0, description="all LLM metrics together; the rest is skipped")


class PromotionSection(_Section):
    enabled: bool = True
    candidate: str = Field(default="twin", description="the model that may be promoted")
    metric: str = Field(default="voice.perplexity", description="primary metric (see docs/evaluation.md)")
    min_improvement: float = Field(default=0.0, ge=0, description="relative margin it must win by")
    answering: bool = Field(
        default=True, description="also require no answering regression vs base (and production when measured)"
    )
    fact_recall_tolerance: float = Field(default=0.02, ge=0, description="absolute drop of answer.fact_recall allowed")
    supported_tolerance: float = Field(default=0.05, ge=0, description="absolute drop of answer.supported_rate allowed")
    degenerate_tolerance: float = Field(
        default=0.0, ge=0, description="absolute rise of answer.degenerate_rate allowed"
    )


class TrackingSection(_Section):
    comet: bool = True
    opik: bool = Field(default=True, description="log to Opik when OPIK_URL is set")


class EvaluationConfig(_Section):
    models: list[str] = Field(default_factory=lambda: ["base", "sft", "twin"])
    dataset: str | None = Field(default=None, description="dataset folder or version (default: the newest)")
    qa: str = "data/sample/qa.jsonl"
    references: str | None = Field(
        default="data/sample/qa_answers.jsonl", description="reference answers joined to the QA set by question"
    )
    output: str | None = Field(default=None, description="report folder (default: DATA_DIR/reports/<version>)")
    seed: int = 0
    voice: VoiceSection = Field(default_factory=VoiceSection)
    generation: GenerationSection = Field(default_factory=GenerationSection)
    judge: JudgeSection = Field(default_factory=JudgeSection)
    rag: RagSection = Field(default_factory=RagSection)
    ragas: RagasSection = Field(default_factory=RagasSection)
    promotion: PromotionSection = Field(default_factory=PromotionSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)


def parse_evaluation_config(data: dict[str, Any] | None, source: str = "evaluation config") -> EvaluationConfig:
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source} must be a YAML mapping (see configs/evaluating.yaml)")
    if set(data) == {"parameters"} and isinstance(data["parameters"], dict):
        data = data["parameters"]
    try:
        config = EvaluationConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigurationError(f"{source}: {problems}") from exc
    unknown = sorted(set(config.ragas.llm_metrics) - set(RAGAS_LLM_METRICS))
    if unknown:
        raise ConfigurationError(f"{source}: ragas.llm_metrics: unknown {unknown}; known: {list(RAGAS_LLM_METRICS)}")
    return config


def load_evaluation_config(path: str | Path) -> EvaluationConfig:
    return parse_evaluation_config(
        read_yaml_file(path, "evaluation config", "configs/evaluating.yaml"), source=str(path)
    )
