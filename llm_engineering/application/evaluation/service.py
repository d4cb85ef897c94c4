"""The evaluation service: judge-free voice metrics, generations (style, RAG answers, citations, speed), the judge
and Ragas, retrieval metrics — phase by phase, so the ZenML steps stay thin and a failed phase never hides what the
others measured.

Adapters come in through `EvaluationDeps` (built by the composition root, `Container.evaluation()`): a scorer
per checkpoint (`SequenceScorer`), a way to serve a checkpoint as an `LLM` (a vLLM server per model, or
transformers), the judge endpoint, and the retrieval side of the feature store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, Field

from llm_engineering.application.datasets.reader import read_dataset_splits
from llm_engineering.application.evaluation.answer_quality import answer_metrics, answer_rates
from llm_engineering.application.evaluation.config import EvaluationConfig
from llm_engineering.application.evaluation.judge import Judge, judge_model
from llm_engineering.application.evaluation.qa_set import (
    QAReference,
    load_qa_with_references,
    reference_contexts,
    select_questions,
)
from llm_engineering.application.evaluation.rag_capture import CapturingTracer, answer_questions
from llm_engineering.application.evaluation.rag_quality import aggregate, nonllm_metrics, speed_metrics
from llm_engineering.application.evaluation.ragas_adapters import (
    build_ragas_llm_metrics,
    ragas_available,
    ragas_embeddings_adapter,
    ragas_llm_adapter,
    score_ragas_llm,
)
from llm_engineering.application.evaluation.results import (
    GeneratedAnswer,
    GenerationResult,
    JudgePhase,
    JudgeResult,
    ModelUnderTest,
    Skipped,
    VoiceResult,
)
from llm_engineering.application.evaluation.retrieval import QAItem, evaluate_retrieval
from llm_engineering.application.evaluation.voice import instruct_example, score_voice, style_metrics
from llm_engineering.application.ports import (
    LLM,
    AuthorDirectory,
    Embedder,
    ModelRuntime,
    PromptTokenCounter,
    Retriever,
)
from llm_engineering.domain.datasets import INSTRUCT_FILES
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.generation import GenerationDefaults, generation_defaults

RAG_KEYS = (
    "rag.nonllm_context_precision",
    "rag.nonllm_context_recall",
    "rag.id_context_precision",
    "rag.id_context_recall",
    "rag.string_similarity",
    "rag.rouge_l",
    "rag.rouge_1",
    "rag.cited_answer_rate",
    "rag.citation_valid_rate",
    "rag.citation_supported_rate",
)


@dataclass
class EvaluationDeps:
    runtime: ModelRuntime
    retriever: Retriever | None = None
    # The composition root's RAGService builder (keyword args llm=, tracer=, config=): answers come from the same
    # assembly as /rag.
    rag_service: Callable[..., Any] | None = None
    search: Retriever | None = None  # resolves the author filter from the question, as /search does
    authors: AuthorDirectory | None = None
    token_counter: PromptTokenCounter | None = None
    embedder: Embedder | None = None
    rag_config: Any = None  # RAGConfig from settings; the service adapts it
    rag_unavailable: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class EvalDataset(BaseModel):
    path: str
    version: str
    counts: dict[str, int]
    instruct_test: list[dict[str, Any]]
    preference_test: list[dict[str, Any]]
    author_train_answers: list[str] = Field(default_factory=list)


class EvaluationPlan(BaseModel):
    """Everything a run evaluates (small, JSON-able: it travels between ZenML steps)."""

    config: EvaluationConfig
    version: str
    created_at: str
    output_dir: str
    models: list[ModelUnderTest]
    dataset: EvalDataset
    qa_path: str
    references_path: str | None = None
    qa: list[QAReference]
    questions: list[QAReference]

    def model(self, name: str) -> ModelUnderTest | None:
        return next((m for m in self.models if m.name == name), None)


def load_eval_dataset(
    dataset_dir: str | Path, max_samples: int, max_pairs: int, focus_documents: Sequence[str] = ()
) -> EvalDataset:
    """The held-out splits of a generated dataset folder (and the author's train answers, for a style floor).
    Rows of `focus_documents` (the new writing) come first, so the sample caps never leave them out."""
    dataset_dir = Path(dataset_dir)
    splits = read_dataset_splits(dataset_dir, need_preference=False, need_test=True)
    instruct_test, preference_test = splits.rows["instruct_test"], splits.rows["preference_test"]
    if focus_documents:
        focus = set(focus_documents)
        instruct_test = sorted(instruct_test, key=lambda row: row.get("document_id") not in focus)
        preference_test = sorted(preference_test, key=lambda row: row.get("document_id") not in focus)
    train, version = splits.rows["instruct_train"], splits.version
    for i, row in enumerate(instruct_test[:max_samples]):
        instruct_example(row, f"{dataset_dir / INSTRUCT_FILES['test']} line {i + 1}")  # fail early, with the line
    train_answers = []
    for row in train[:400]:
        try:
            train_answers.append(instruct_example(row, "train")[1])
        except ConfigurationError:
            continue
    return EvalDataset(
        path=str(dataset_dir.resolve()),
        version=version,
        counts={"instruct_test": len(instruct_test), "preference_test": len(preference_test), "train": len(train)},
        instruct_test=instruct_test[:max_samples],
        preference_test=preference_test[:max_pairs],
        author_train_answers=train_answers,
    )


def new_version() -> str:
    return datetime.now(UTC).strftime("eval-%Y%m%d-%H%M%S")


def plan_evaluation(
    config: EvaluationConfig,
    models: Sequence[ModelUnderTest],
    dataset_dir: str | Path,
    qa_path: str | Path,
    references_path: str | Path | None,
    output_root: str | Path,
    output_dir: str | Path | None = None,
    version: str | None = None,
) -> EvaluationPlan:
    """Validate inputs before anything heavy runs: a missing QA file or dataset is a clear error now."""
    if not models:
        raise ConfigurationError("no model to evaluate: pass --models base,sft,twin (or checkpoints)")
    version = version or new_version()
    qa = load_qa_with_references(qa_path, references_path)
    questions = select_questions(qa, config.rag.kinds, config.rag.max_questions)
    dataset = load_eval_dataset(
        dataset_dir, config.voice.max_samples, config.voice.max_pairs, config.voice.focus_documents
    )
    out = Path(output_dir) if output_dir else Path(output_root) / version
    return EvaluationPlan(
        config=config,
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        output_dir=str(out),
        models=list(models),
        dataset=dataset,
        qa_path=str(qa_path),
        references_path=str(references_path) if references_path else None,
        qa=qa,
        questions=questions,
    )


class EvaluationService:
    def __init__(self, deps: EvaluationDeps) -> None:
        self.deps = deps

    # --- judge-free voice ---------------------------------------------------------------------------------------
    def score_voice(self, plan: EvaluationPlan) -> list[VoiceResult]:
        config = plan.config.voice
        reference_name = config.reference_model
        ordered = sorted(plan.models, key=lambda m: m.name != reference_name)  # the reference first
        reference_pairs: list[tuple[float, float]] | None = None
        results: list[VoiceResult] = []
        for model in ordered:
            started = time.monotonic()
            scorer = self.deps.runtime.scorer(model)
            try:
                is_reference = model.name == reference_name
                result, pairs = score_voice(
                    model.name,
                    scorer,
                    plan.dataset.instruct_test,
                    plan.dataset.preference_test,
                    None if is_reference else reference_pairs,
                    config.dpo_beta,
                    focus_documents=config.focus_documents,
                )
            finally:
                scorer.close()
            if is_reference:
                reference_pairs = pairs
            result.metrics["voice.wall_s"] = round(time.monotonic() - started, 2)
            logger.info(f"voice: {model.name}: {_short(result.metrics)}")
            results.append(result)
        order = {m.name: i for i, m in enumerate(plan.models)}
        return sorted(results, key=lambda r: order.get(r.model, 0))

    # --- generations -----------------------------------------------------------------------------------------------
    def generate(self, plan: EvaluationPlan) -> list[GenerationResult]:
        return asyncio.run(self._generate_all(plan))

    async def _generate_all(self, plan: EvaluationPlan) -> list[GenerationResult]:
        reference_contexts_by_q = await asyncio.to_thread(self._reference_contexts, plan)
        results = []
        for model in plan.models:
            if model.voice_only:
                continue
            results.append(await self._generate_one(plan, model, reference_contexts_by_q))
        return results

    def _reference_contexts(self, plan: EvaluationPlan) -> dict[str, list[str]]:
        if not self._rag_ready(plan) or self.deps.retriever is None:
            return {}
        found = {}
        for item in plan.questions:
            try:
                found[item.question] = reference_contexts(self.deps.retriever, item)
            except Exception as exc:  # a missing reference context only disables that question's context metrics
                logger.warning(f"reference contexts for {item.question!r}: {exc}")
        return found

    def _rag_ready(self, plan: EvaluationPlan) -> bool:
        return plan.config.rag.enabled and not self.deps.rag_unavailable and bool(plan.questions)

    def _rag_service(self, llm: LLM, tracer: CapturingTracer, plan: EvaluationPlan, model: ModelUnderTest) -> Any:
        from llm_engineering.application.rag.rag_service import RAGConfig

        rag = plan.config.rag
        base = self.deps.rag_config or RAGConfig()
        # Retrieval identical for every model (no LLM expansion / self-query): the comparison is the answer's.
        config = base.model_copy(
            update={
                "k": rag.k,
                "expand_n": 0,
                "use_llm_self_query": False,
                "max_answer_tokens": rag.max_answer_tokens,
                "temperature": 0.0,
                "helper_budget_s": 30.0,
                # Each model decodes with its own version's defaults, and the serving guard ends loops, as /rag does.
                "generation": _generation_of(model),
                "repetition_guard": rag.repetition_guard,
            }
        )
        return self.deps.rag_service(llm=llm, tracer=tracer, config=config)

    async def _generate_one(
        self, plan: EvaluationPlan, model: ModelUnderTest, refs: dict[str, list[str]]
    ) -> GenerationResult:
        started = time.monotonic()
        gen = plan.config.generation
        result = GenerationResult(model=model.name, backend=self.deps.runtime.generation_backend)
        try:
            with self.deps.runtime.serve(model) as llm:
                result.served_as = getattr(llm, "base_url", "")
                result.voice_answers = await self._voice_answers(llm, plan, model)
                if self._rag_ready(plan):
                    tracer = CapturingTracer()
                    answers = await answer_questions(
                        self._rag_service(llm, tracer, plan, model),
                        tracer,
                        plan.questions,
                        plan.config.rag.k,
                        plan.config.rag.max_answer_tokens,
                        gen.concurrency,
                    )
                    for answer in answers:
                        answer.reference_contexts = refs.get(answer.question, [])
                    result.rag_answers = answers
                await llm.aclose()
        except Exception as exc:  # this model's generations failed: its other metrics still count
            logger.error(f"generation for {model.name} failed: {type(exc).__name__}: {exc}")
            result.error = f"{type(exc).__name__}: {exc}"[:500]
        await self._score_generations(plan, result)
        result.wall_s = round(time.monotonic() - started, 2)
        logger.info(f"generation: {model.name}: {_short(result.metrics)} ({result.wall_s:.0f}s)")
        return result

    async def _voice_answers(self, llm: LLM, plan: EvaluationPlan, model: ModelUnderTest) -> list[GeneratedAnswer]:
        gen = plan.config.generation
        rows = plan.dataset.instruct_test[: gen.max_samples]
        semaphore = asyncio.Semaphore(gen.concurrency)
        sampling = _generation_of(model).sampling_options()

        async def one(index: int, row: dict[str, Any]) -> GeneratedAnswer:
            prompt, reference = instruct_example(row, f"instruct test row {index + 1}")
            item = GeneratedAnswer(
                id=f"instruct-{index + 1}",
                kind="voice",
                question=_question_of(prompt),
                prompt=prompt,
                reference=reference,
            )
            async with semaphore:
                try:
                    chat = await llm.chat(
                        prompt, max_tokens=gen.max_tokens, temperature=0.0, timeout_s=gen.timeout_s, **sampling
                    )
                except Exception as exc:
                    return item.model_copy(update={"error": f"{type(exc).__name__}: {exc}"[:300]})
            return item.model_copy(
                update={
                    "answer": chat.text,
                    "latency_s": round(chat.latency_s, 4) if chat.latency_s else None,
                    "completion_tokens": chat.completion_tokens,
                    "finish_reason": chat.finish_reason,
                }
            )

        return list(await asyncio.gather(*(one(i, row) for i, row in enumerate(rows))))

    async def _score_generations(self, plan: EvaluationPlan, result: GenerationResult) -> None:
        generated = [a.answer for a in result.voice_answers if a.answer]
        references = [a.reference or "" for a in result.voice_answers]
        result.metrics.update(style_metrics(generated, references))
        result.metrics["generation.voice_answers"] = float(len(generated))
        result.metrics["generation.errors"] = float(
            sum(1 for a in [*result.voice_answers, *result.rag_answers] if a.error)
        )
        use_ragas, _ = ragas_available() if plan.config.ragas.enabled else (False, "")
        implementations = set()
        cfg = plan.config.rag
        for answer in result.rag_answers:
            if answer.error:
                continue
            metrics, implementation = await nonllm_metrics(
                answer, cfg.similarity_threshold, cfg.citation_support_threshold, use_ragas
            )
            answer.metrics.update(metrics)
            answer.metrics.update(answer_metrics(answer))
            implementations.add(implementation)
        if result.rag_answers:
            result.metrics.update(aggregate([a for a in result.rag_answers if not a.error], RAG_KEYS))
            result.metrics["rag.answered"] = float(sum(1 for a in result.rag_answers if not a.error))
            result.metrics.update(answer_rates(result.rag_answers))
        timed = result.rag_answers or result.voice_answers
        result.metrics.update(speed_metrics([a for a in timed if not a.error]))
        result.metrics["rag.nonllm_implementation_ragas"] = 1.0 if implementations == {"ragas"} else 0.0

    # --- judge and Ragas LLM metrics ----------------------------------------------------------------------------
    def judge(self, plan: EvaluationPlan, generations: Sequence[GenerationResult]) -> JudgePhase:
        return asyncio.run(self._judge(plan, list(generations)))

    async def _judge(self, plan: EvaluationPlan, generations: list[GenerationResult]) -> JudgePhase:
        started = time.monotonic()
        phase = JudgePhase()
        judge_metrics = ["judge.accuracy", "judge.style", "judge.win_rate_vs_author", "judge.agreement"]
        ragas_metrics = [f"rag.{m}" for m in plan.config.ragas.llm_metrics] if plan.config.ragas.enabled else []
        if not plan.config.judge.enabled:
            phase.reason = "judge disabled in the config (judge.enabled: false)"
            phase.skipped = [Skipped(metric=m, reason=phase.reason) for m in judge_metrics + ragas_metrics]
            return phase
        with self.deps.runtime.judge() as endpoint:
            phase.base_url, phase.model, phase.warning = endpoint.base_url, endpoint.model, endpoint.warning
            if endpoint.llm is None:
                phase.reason = endpoint.reason or "no judge endpoint"
                phase.skipped = [Skipped(metric=m, reason=phase.reason) for m in judge_metrics + ragas_metrics]
                return phase
            ok, why = await endpoint.llm.ready(timeout_s=5.0)
            if not ok:
                phase.reason = f"judge unreachable at {endpoint.base_url}: {why}"
                phase.skipped = [Skipped(metric=m, reason=phase.reason) for m in judge_metrics + ragas_metrics]
                logger.warning(f"{phase.reason}; judge metrics skipped, judge-free metrics stand")
                return phase
            phase.status = "ok"
            cfg = plan.config.judge
            judge = Judge(endpoint.llm, max_tokens=cfg.max_tokens, timeout_s=cfg.timeout_s)
            for generation in generations:
                items = [
                    (a.id, a.question, a.answer, a.reference or "")
                    for a in generation.voice_answers[: cfg.max_samples]
                    if a.answer and not a.error
                ]
                if not items:
                    phase.results.append(JudgeResult(model=generation.model))
                    continue
                phase.results.append(await judge_model(judge, generation.model, items, pairwise=cfg.pairwise))
            phase.ragas = {"judge_calls": judge.calls, "judge_retries": judge.retries, "judge_missing": judge.missing}
            await self._ragas_llm(plan, generations, endpoint.llm, phase)
        phase.wall_s = round(time.monotonic() - started, 2)
        return phase

    async def _ragas_llm(self, plan: EvaluationPlan, generations: list[GenerationResult], llm: LLM, phase: JudgePhase):
        cfg = plan.config.ragas
        names = list(cfg.llm_metrics) if cfg.enabled else []
        if not names:
            return
        available, detail = ragas_available()
        phase.ragas["available"] = available
        phase.ragas["version_or_error"] = detail
        if not available:
            phase.skipped += [
                Skipped(metric=f"rag.{n}", reason=f"Ragas cannot be imported ({detail}); non-LLM metrics use ours")
                for n in names
            ]
            return
        if cfg.max_questions == 0 or not any(g.rag_answers for g in generations):
            reason = "ragas.max_questions is 0" if cfg.max_questions == 0 else "no RAG answers to score"
            phase.skipped += [Skipped(metric=f"rag.{n}", reason=reason) for n in names]
            return
        adapter = ragas_llm_adapter(llm, cfg.max_tokens, cfg.timeout_s)
        embeddings = ragas_embeddings_adapter(self.deps.embedder) if self.deps.embedder is not None else None
        metrics, skipped = build_ragas_llm_metrics(names, adapter, embeddings)
        phase.skipped += skipped
        deadline = time.monotonic() + cfg.budget_s
        totals = {"scored": 0, "failed": 0, "skipped": 0}
        results = {r.model: r for r in phase.results}
        for generation in generations:
            answers = [a for a in generation.rag_answers if not a.error][: cfg.max_questions]
            counts = await score_ragas_llm(metrics, answers, cfg.timeout_s, deadline)
            for key, value in counts.items():
                totals[key] += value
            # The scores travel in the judge phase (its own artifact), not in the generations it was given.
            result = results.setdefault(generation.model, JudgeResult(model=generation.model))
            if result not in phase.results:
                phase.results.append(result)
            for name in metrics:
                key = f"rag.{name}"
                values = [a.metrics.get(key) for a in answers if key in a.metrics]
                result.metrics[key] = aggregate([a for a in answers if a.metrics.get(key) is not None], [key])[key]
                result.metrics[f"{key}_failed"] = float(sum(1 for v in values if v is None))
            result.ragas_rows = [
                {
                    "id": a.id,
                    **{k: v for k, v in a.metrics.items() if k.startswith("rag.") and _is_ragas_key(k, metrics)},
                }
                for a in answers
            ]
        phase.ragas.update({"llm_calls": adapter.calls, "invalid_outputs": adapter.invalid, **totals})
        if totals["skipped"]:
            phase.skipped.append(
                Skipped(metric="rag.(ragas llm metrics)", reason=f"budget of {cfg.budget_s:.0f}s spent: {totals}")
            )

    # --- retrieval ---------------------------------------------------------------------------------------------
    def retrieval(self, plan: EvaluationPlan) -> dict[str, Any]:
        if self.deps.search is None or self.deps.rag_unavailable:
            return {"skipped": self.deps.rag_unavailable or "no feature store"}
        items = [QAItem(question=q.question, link=q.link, author=q.author, kind=q.kind) for q in plan.qa]
        evaluation = evaluate_retrieval(
            self.deps.search, items, k=plan.config.rag.retrieval_k, modes=plan.config.rag.retrieval_modes
        )
        return {
            "k": evaluation.k,
            "overall": evaluation.overall,
            "per_kind": evaluation.per_kind,
            "rows": evaluation.rows,
        }


def _generation_of(model: ModelUnderTest) -> GenerationDefaults:
    """The model version's decoding defaults (resolved with the model), else the domain defaults."""
    return generation_defaults({"generation": model.generation})


def _is_ragas_key(key: str, metrics: dict[str, Any]) -> bool:
    return any(key == f"rag.{name}" or key == f"rag.{name}_error" for name in metrics)


def _question_of(prompt: Sequence[dict[str, str]]) -> str:
    text = prompt[-1]["content"] if prompt else ""
    marker = "\n\nQuestion: "
    return text.rsplit(marker, 1)[1] if marker in text else text


def _short(metrics: dict[str, Any]) -> str:
    # "key value", not key=value: the log redaction masks any `...token...=value` pair (nll_per_token, tokens_per_s)
    return ", ".join(f"{k} {v:.3g}" for k, v in metrics.items() if isinstance(v, float))
