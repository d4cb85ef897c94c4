"""The embedder adaptation run: dataset -> (question, passage, hard negatives) -> fine-tune -> gate -> registry.

`train_embedder(config, dataset)` reads the dataset's instruct splits (split by document), turns the train split
into examples over the author's indexed passages with hard negatives mined from the current index (hybrid, the
serving embedder), measures the base model on the test split, fine-tunes a copy, measures it again, and registers
it as `embedder:vN` (+ `latest`, a model card with the data hash and both numbers) only when it is better on the
test split by the config's margin; otherwise nothing is registered and the report says why. The ZenML pipeline
`embedding_training` calls the same function from a thin step.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel

from llm_engineering.application.datasets.reader import dataset_hash, read_dataset_splits, resolve_dataset_dir
from llm_engineering.application.training.embedder_data import build_examples, corpus_passages, evaluate_examples
from llm_engineering.infrastructure.embeddings import EmbeddingModel, resolve_embedding_model
from llm_engineering.infrastructure.ml.embedding_training import EmbeddingTrainingConfig, fine_tune
from llm_engineering.infrastructure.registry import RegisteredVersion, register_version
from llm_engineering.settings import Settings, get_settings
from llm_engineering.wiring.container import get_container

RUNS_DIRNAME = "training/embedder-runs"


class EmbedderRunReport(BaseModel):
    base_model: str
    dataset: dict[str, Any]
    examples: dict[str, Any]
    passages: int
    before: dict[str, Any]
    after: dict[str, Any] | None = None
    metric: str
    improved: bool = False
    registered: str | None = None  # "embedder:v0002", or None
    refused: str | None = None  # why nothing was registered
    training: dict[str, Any] = {}
    timings_s: dict[str, float] = {}
    path: str | None = None


def _card(name: str, version: str, report: EmbedderRunReport, config: EmbeddingTrainingConfig) -> str:
    before, after = report.before, report.after or {}
    rows = "\n".join(f"| {key} | {before.get(key)} | {after.get(key)} |" for key in before if key != "questions")
    return f"""---
library_name: sentence-transformers
base_model: {report.base_model}
tags: [sentence-transformers, feature-extraction, llm-twin, embedder]
---
# {name}:{version}

The author's embedding model: `{report.base_model}` fine-tuned on the twin's own generated (question → passage)
pairs with MultipleNegativesRankingLoss (in-batch negatives + {report.training.get("negatives_per_example")} hard
negative(s) per question mined from the index: passages of other documents ranked high by hybrid retrieval).

- dataset: `{report.dataset["version"]}` (sha256 `{report.dataset["hash"]}`),
  {report.examples["train"]["examples"]} training examples,
  {report.examples["test"]["examples"]} test questions (the test split: other documents)
- training: {report.training.get("steps")} steps, {report.training.get("train_seconds")} s, seed {config.seed}

Test split, dense retrieval over the {report.passages} indexed passages (documents ranked by their best passage):

| metric | before | after |
|---|---|---|
{rows}

Use it: `EMBEDDING_MODEL_ID={name}:{version}` (or `{name}` for `latest`), then `poe run-feature-engineering-pipeline`
re-embeds the collection (a new store version; the service switches when it is complete).
"""


def train_embedder(
    config: EmbeddingTrainingConfig,
    dataset: str | Path | None = None,
    settings: Settings | None = None,
    encoder_factory: Callable[[str, str], Any] | None = None,
) -> tuple[EmbedderRunReport, RegisteredVersion | None]:
    """The whole run in this process (tools, the ZenML step, the main job, benches). See the module doc.

    `encoder_factory(model_id, path)` builds the encoders that measure the base and the trained model (default: an
    `EmbeddingModel`; the bench passes one that caches vectors, so the re-embed that follows reuses them)."""
    settings = settings or get_settings()

    def encoder(model_id: str, path: str) -> Any:
        if encoder_factory is not None:
            return encoder_factory(model_id, path)
        return EmbeddingModel(model_id, settings.embedding_device, settings.embedding_batch_size, path=path)

    container = get_container(settings)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    dataset_dir = resolve_dataset_dir(container.artifacts("datasets"), dataset)
    splits = read_dataset_splits(dataset_dir, need_preference=False, need_test=True)
    base_id, base_path = resolve_embedding_model(settings, config.base_model)
    documents = container.feature_store.cleaned_documents()
    passages = corpus_passages(documents, container.embedder)
    train_examples, train_report = build_examples(
        splits.rows["instruct_train"],
        passages,
        container.retriever(),
        negatives=config.data.negatives,
        min_answer_overlap=config.data.min_answer_overlap,
        search_depth=config.data.search_depth,
    )
    if config.data.max_examples:
        train_examples = train_examples[: config.data.max_examples]
    test_examples, test_report = build_examples(
        splits.rows["instruct_test"], passages, None, min_answer_overlap=config.data.min_answer_overlap
    )
    timings["examples"] = time.perf_counter() - started
    info = {"version": splits.version, "path": str(dataset_dir), "hash": dataset_hash(dataset_dir)}
    report = EmbedderRunReport(
        base_model=base_id,
        dataset=info,
        examples={"train": train_report.as_dict(), "test": test_report.as_dict()},
        passages=len(passages),
        before={},
        metric=config.eval.metric,
    )
    if not test_examples:
        report.refused = "the dataset's test split has no question whose source is indexed: nothing to compare on"
        return report, None

    started = time.perf_counter()
    base = encoder(base_id, base_path)
    report.before = evaluate_examples(base.encode, test_examples, passages, k=config.eval.k)
    timings["evaluate_before"] = time.perf_counter() - started
    if config.eval.metric not in report.before:
        from llm_engineering.domain.errors import ConfigurationError

        raise ConfigurationError(f"eval.metric: {config.eval.metric!r} is not one of {sorted(report.before)}")

    key = hashlib.sha256(f"{config.fingerprint()}:{info['hash']}:{base_id}".encode()).hexdigest()[:12]
    run_dir = Path(settings.data_dir) / RUNS_DIRNAME / f"{config.output.name}-{key}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    model_dir = run_dir / "model"
    started = time.perf_counter()
    training = fine_tune(config, base_path, train_examples, model_dir, device=settings.embedding_device)
    timings["train"] = time.perf_counter() - started
    log_history = training.pop("log_history")
    report.training = training

    started = time.perf_counter()
    tuned = encoder(f"{config.output.name}-candidate", str(model_dir))
    report.after = evaluate_examples(tuned.encode, test_examples, passages, k=config.eval.k)
    timings["evaluate_after"] = time.perf_counter() - started
    report.timings_s = {k: round(v, 1) for k, v in timings.items()}
    metric = config.eval.metric
    report.improved = report.after[metric] > report.before[metric] + config.eval.min_improvement
    if not report.improved:
        report.refused = (
            f"not better on the test split: {metric} {report.before[metric]:.4f} -> {report.after[metric]:.4f} "
            f"(needs > {report.before[metric] + config.eval.min_improvement:.4f}); nothing registered"
        )
        logger.warning(report.refused)
        shutil.rmtree(run_dir, ignore_errors=True)
        return report, None
    if not config.output.to_registry:
        report.path = str(model_dir)
        return report, None

    (model_dir / "training").mkdir(exist_ok=True)
    (model_dir / "training" / "log_history.json").write_text(json.dumps(log_history, indent=2) + "\n")
    manifest = {
        "kind": "embedder",
        "base_model": base_id,
        "dataset": info,
        "metrics": {"before": report.before, "after": report.after, "metric": metric},
        "training": training,
        "examples": report.examples,
        "config": config.model_dump(mode="json"),
        "timings_s": report.timings_s,
        "platform": platform.platform(),
    }
    store = container.artifacts("models", config.output.name)
    version_hint = store.next_version()  # the card names it; register_version allocates the same unless raced
    (model_dir / "README.md").write_text(_card(config.output.name, version_hint, report, config), encoding="utf-8")
    registered = register_version(
        settings.models_dir, twin_dir=model_dir, sft_dir=None, manifest=manifest, name=config.output.name
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    report.registered = f"{registered.name}:{registered.version}"
    report.path = registered.path
    return report, registered
