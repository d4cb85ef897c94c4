"""The evaluation's numbers beyond the report: ZenML metadata (the run, and the `llm-twin` model version of each
registry model evaluated), a Comet experiment (offline by default, like training's), and Opik when OPIK_URL is
set. Each is best effort: a tracker that fails is logged and noted, never fatal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loguru import logger

from llm_engineering.application.evaluation.report import EvaluationReport
from llm_engineering.application.evaluation.results import finite
from llm_engineering.settings import Settings


def flat_metrics(report: EvaluationReport) -> dict[str, float]:
    """`<model>/<metric>` -> value (numbers only)."""
    out: dict[str, float] = {}
    for model, metrics in report.summary.items():
        for key, value in metrics.items():
            number = finite(value)
            if number is not None:
                out[f"{model}/{key}"] = round(number, 6)
    for mode, values in (report.retrieval.get("overall") or {}).items():
        for key, value in values.items():
            if key != "questions" and finite(value) is not None:
                out[f"retrieval/{mode}/{key}"] = round(float(value), 6)
    return out


def zenml_metadata(report: EvaluationReport) -> dict[str, Any]:
    """Run/step metadata: per-model metric dicts (the dashboard renders nested dicts), skips, promotion."""
    metadata: dict[str, Any] = {
        "evaluation_version": report.version,
        "report_html": str(Path(report.output_dir) / "report.html"),
        "dataset_version": str(report.dataset.get("version")),
        "judge": {"status": report.judge.status, "model": report.judge.model, "reason": report.judge.reason},
        "skipped": {s.metric: s.reason for s in report.skipped},
    }
    for model, metrics in report.summary.items():
        metadata[f"metrics_{model}"] = {k: round(v, 6) for k, v in metrics.items() if finite(v) is not None}
    if report.promotion:
        metadata["promotion"] = report.promotion.model_dump(mode="json", exclude={"zenml"})
    return metadata


def log_model_version_metadata(report: EvaluationReport) -> list[str]:
    """The metrics of every evaluated registry version on its ZenML model version (`llm-twin`, version name =
    registry version, as training names it). Returns what was logged."""
    try:
        from zenml import log_metadata
    except ImportError:  # pragma: no cover - zenml is a core dependency
        return []
    logged = []
    for model in report.models:
        name, version = model.get("registry_name"), model.get("registry_version")
        if not name or not version or name.endswith("-sft"):
            continue
        metrics = {k: round(v, 6) for k, v in report.summary.get(model["name"], {}).items() if finite(v) is not None}
        try:
            log_metadata(
                metadata={"evaluation": {"version": report.version, **metrics}},
                model_name=name,
                model_version=version,
            )
            logged.append(f"{name}:{version}")
        except Exception as exc:  # e.g. trained without ZenML: no such model version
            logger.warning(f"ZenML model version {name}:{version} not updated: {type(exc).__name__}: {exc}")
    return logged


def log_to_comet(settings: Settings, report: EvaluationReport, enabled: bool = True) -> dict[str, Any]:
    from llm_engineering.infrastructure.tracking.training import start_tracking

    api_key = settings.comet_api_key.get_secret_value() if settings.comet_api_key else None
    try:
        tracker = start_tracking(
            enabled=enabled,
            data_dir=settings.data_dir,
            project=settings.comet_project,
            run_name=report.version,
            api_key=api_key,
            tags=["evaluation", f"dataset:{report.dataset.get('version')}", *report.summary],
        )
        tracker.log_metrics(flat_metrics(report))
        tracker.log_others({"evaluation_version": report.version, "judge_status": report.judge.status})
        report_json = Path(report.output_dir) / "report.json"
        if report_json.is_file():
            tracker.log_text_asset(report_json.read_text(encoding="utf-8"), "evaluation_report.json")
        tracker.end()
        return tracker.summary()
    except Exception as exc:
        logger.warning(f"Comet logging failed: {type(exc).__name__}: {exc}")
        return {"mode": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}


def log_to_opik(settings: Settings, report: EvaluationReport, enabled: bool = True) -> dict[str, Any]:
    """One Opik trace per model with its metrics as feedback scores (only when OPIK_URL is configured)."""
    if not enabled or not settings.opik_url:
        return {"mode": "off", "reason": "OPIK_URL is not set" if enabled else "disabled in the config"}
    try:
        import opik

        client = opik.Opik(
            project_name=settings.opik_project,
            host=settings.opik_url,
            api_key=settings.opik_api_key.get_secret_value() if settings.opik_api_key else None,
        )
        for model, metrics in report.summary.items():
            scores = [
                {"name": key.replace(".", "_"), "value": float(value)}
                for key, value in metrics.items()
                if finite(value) is not None
            ]
            client.trace(
                name=f"evaluation:{model}",
                input={"evaluation": report.version, "model": model, "dataset": report.dataset.get("version")},
                output={"metrics": {k: v for k, v in metrics.items() if finite(v) is not None}},
                metadata={"report": str(Path(report.output_dir) / "report.html")},
                tags=["evaluation"],
                feedback_scores=scores,
            )
        client.flush()
        return {"mode": "online", "url": settings.opik_url, "traces": len(report.summary)}
    except Exception as exc:
        logger.warning(f"Opik logging failed: {type(exc).__name__}: {exc}")
        return {"mode": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
