"""The twin refresh's composition (issue #22): the ledger and lock, the base-model engine that writes the new
dataset's generations, and the serving switch after a promotion. The pipeline itself is `pipelines/twin_refresh.py`
(the other pipelines' steps, composed); these are the few things only the refresh does."""

from __future__ import annotations

from typing import Any

from loguru import logger

from llm_engineering.application.evaluation.results import PromotionDecision
from llm_engineering.application.refresh.changes import CorpusChanges, corpus_changes, fingerprint
from llm_engineering.application.refresh.report import RefreshReport
from llm_engineering.infrastructure.refresh_ledger import RefreshLedger
from llm_engineering.settings import Settings

DATASET_ENGINE_NAME = "vllm-refresh-datasets"


def refresh_ledger(settings: Settings) -> RefreshLedger:
    return RefreshLedger(settings.data_dir / "refresh")


def detect_changes(settings: Settings, authors: list[str], versions: dict, *, force: bool = False) -> CorpusChanges:
    """The corpus now (the feature pipeline's warehouse snapshot) against the last completed refresh's."""
    previous = refresh_ledger(settings).last_fingerprint(authors)
    return corpus_changes(previous, fingerprint(versions), authors, force=force)


def start_dataset_llm(settings: Settings, model_spec: str) -> dict[str, Any]:
    """An endpoint serving `model_spec` for dataset generation: {base_url, model, started}. The configured engine
    when it serves exactly that model and no hot switch moved it; else an engine of its own on a free port beside
    whatever serves users (a leftover of a killed refresh is stopped first)."""
    from llm_engineering.infrastructure.local_services import find_free_port
    from llm_engineering.infrastructure.ml.inference_engine import (
        engine_settings,
        llm_server_service,
        models_endpoint_ready,
        prepare_engine,
        start_engine,
    )
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS, prepare_packaged_model
    from llm_engineering.infrastructure.serving import active_serving

    if settings.llm_model_id == model_spec and active_serving(settings) is None and models_endpoint_ready(settings):
        return {"base_url": settings.llm_base_url, "model": model_spec, "started": False}
    if model_spec == PACKAGED_MODEL_ALIAS:
        prepare_packaged_model(settings)
    stop_dataset_llm(settings, {"started": True})
    port = find_free_port()
    # A short-lived engine that starts beside a busy one: vLLM's compile warm-up would cost more than it saves
    # (measured on 2 cores: not ready in 300 s while the served twin answered 4 clients), so it runs eager and
    # is given three times the usual start-up time.
    engine = settings.model_copy(
        update={
            "llm_server_extra_args": f"{settings.llm_server_extra_args} --enforce-eager".strip(),
            "llm_server_startup_timeout_s": 3 * settings.llm_server_startup_timeout_s,
        }
    )
    service = llm_server_service(engine, model_spec=model_spec, port=port, name=DATASET_ENGINE_NAME)
    if service is None:  # a remote LLM_BASE_URL: it must serve the dataset model itself
        return {"base_url": settings.llm_base_url, "model": model_spec, "started": False}
    prepare_engine(engine, service)
    start_engine(service)  # raises, naming the engine's log, when it does not become ready
    base_url = engine_settings(engine, model_spec=model_spec, port=port).llm_base_url
    logger.info(f"dataset LLM {model_spec} on {base_url} ({DATASET_ENGINE_NAME})")
    return {"base_url": base_url, "model": model_spec, "started": True}


def stop_dataset_llm(settings: Settings, endpoint: dict[str, Any]) -> bool:
    """Stop the dataset engine this refresh (or a killed earlier one) started; never the configured engine."""
    from llm_engineering.infrastructure.ml.inference_engine import llm_server_service

    if not endpoint.get("started"):
        return False
    service = llm_server_service(settings, name=DATASET_ENGINE_NAME)
    return bool(service is not None and service.stop())


def continued_training(
    settings: Settings, dataset_dir: str, changes: CorpusChanges, model_name: str, replay_share: float, seed: int
) -> dict[str, Any]:
    """Continue mode: {"model": the production twin's checkpoint, "dataset_dir": a derived dataset version whose
    train splits hold the new and changed documents' rows plus `replay_share` of the others} (test splits whole,
    so the evaluation still sees every held-out document). `latest` keeps naming the full version."""
    import json

    from llm_engineering.application.datasets.reader import read_dataset_splits
    from llm_engineering.application.refresh.replay import replay_rows
    from llm_engineering.infrastructure.registry import resolve_registered_model
    from llm_engineering.wiring.container import get_container

    model = resolve_registered_model(settings.models_dir, f"{model_name}:production")
    splits = read_dataset_splits(dataset_dir)
    focus = set(changes.new) | set(changes.changed)
    kept = {
        key: replay_rows(rows, focus, replay_share, seed) if key.endswith("_train") else rows
        for key, rows in splits.rows.items()
    }

    def fill(folder, version: str) -> None:
        for key, rows in kept.items():
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            (folder / f"{key}.jsonl").write_text(text, encoding="utf-8")
        report = {
            **(splits.report or {}),
            "version": version,
            "derived_from": splits.version,
            "training_mode": "continue",
            "replay_share": replay_share,
            "counts": {key: len(rows) for key, rows in kept.items()},
        }
        (folder / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")

    derived = get_container(settings).artifacts("datasets").write(fill, alias=None)
    logger.info(
        f"continue mode: {model} on {derived.name} ({len(kept['instruct_train'])} of "
        f"{len(splits.rows['instruct_train'])} SFT rows: {len(focus)} new/changed document(s) + "
        f"{replay_share:.0%} replay)"
    )
    return {"model": str(model), "dataset_dir": str(derived)}


def production_version(settings: Settings, name: str = "llm-twin") -> str | None:
    from llm_engineering.infrastructure.registry import read_pointer

    return read_pointer(settings.models_dir, name, "production")


def serve_production(settings: Settings, decision: PromotionDecision, model_name: str, switch: bool) -> dict[str, Any]:
    """After the gate: move the serving side to the promoted version (a second engine, then traffic, then the old
    one drains), or leave it as it is."""
    if not (decision.promote and decision.applied):
        return {"switched": False, "summary": "production unchanged: the serving side keeps its version"}
    spec = f"{model_name}:{decision.candidate_version}"
    if not switch:
        return {"switched": False, "summary": f"switch_serving: false; serve {spec} with poe run-llm-server"}
    from llm_engineering.infrastructure.serving import switch_serving

    result = switch_serving(settings, spec)
    if result.started:
        summary = f"{result.model_spec} answers on {result.base_url}" + (
            f"; {result.previous.model_spec} drained and stopped" if result.previous and result.stopped_previous else ""
        )
    else:
        summary = f"nothing was served: {result.model_spec} recorded, the next poe run-llm-server serves it"
    logger.info(f"serving switch: {summary}")
    return {"switched": result.started, "summary": summary, **result.model_dump(mode="json")}


def record_refresh(settings: Settings, changes: CorpusChanges, report: RefreshReport) -> RefreshReport:
    refresh_ledger(settings).record(changes.authors, changes.fingerprint, report.model_dump(mode="json"))
    return report
