"""Roll the twin back: `production` points at an earlier version again, in the registry, ZenML and the engine.

`rollback_production(settings)` finds the version production held before the current one (the registry's audit
trail, `history.jsonl`), or takes `to`, moves the `production` pointer with an audit record (`action="rollback"`),
sets the ZenML Model Control Plane stage as an evaluation promotion does, and hot-switches the served engine
(switch.py) when one is served (or when a switch recorded a version: the record follows the rollback).
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.settings import Settings


def previous_production(history: list[dict[str, Any]], current: str) -> str | None:
    """The version production held before `current` was promoted: the `previous` of the last promotion to
    `current` (rollbacks skipped, so a second rollback goes one step further back)."""
    for record in reversed(history):
        if record.get("stage", "production") != "production" or record.get("action", "promote") == "rollback":
            continue
        if record.get("version") == current and record.get("previous") and record.get("previous") != current:
            return str(record["previous"])
    return None


def rollback_production(
    settings: Settings,
    to: str | None = None,
    *,
    name: str | None = None,
    actor: str = "",
    reason: str = "",
    switch: bool = True,
    drain_timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Point `production` of `name` (default llm-twin) at `to` (`v0003`, `3`) or the previous production version,
    record it, set the ZenML stage and switch the served engine. Returns {"record", "zenml", "switch"}.

    Raises ConfigurationError when there is no production version, no earlier one in the history (pass `to`), or
    `to` is not a registered version."""
    from llm_engineering.infrastructure.ml.model_runtime import zenml_set_stage
    from llm_engineering.infrastructure.registry import (
        DEFAULT_MODEL_NAME,
        list_versions,
        promote,
        promotion_history,
        read_pointer,
    )
    from llm_engineering.infrastructure.serving.state import active_serving
    from llm_engineering.infrastructure.serving.switch import answering_engine, switch_serving

    name = name or DEFAULT_MODEL_NAME
    current = read_pointer(settings.models_dir, name, "production")
    if to is not None:
        target = f"v{int(to.lstrip('v')):04d}" if to.lstrip("v").isdigit() else to
    else:
        if current is None:
            raise ConfigurationError(f"{name} has no production version to roll back from; pass --to vNNNN")
        target = previous_production(promotion_history(settings.models_dir, name), current)
        if target is None:
            raise ConfigurationError(
                f"{name}:{current} is production and the registry history names no earlier production version; "
                f"pass --to vNNNN (registered: {', '.join(list_versions(settings.models_dir, name)) or 'none'})"
            )
    if target == current:
        raise ConfigurationError(f"{name}:{target} is production already: nothing to roll back")
    record = promote(
        settings.models_dir,
        target,
        name=name,
        action="rollback",
        actor=actor,
        reason=reason or f"rollback from {current or 'none'}",
    )
    zenml = zenml_set_stage(name, target, "production")
    logger.info(f"rollback: {name} production {current or 'none'} -> {target}")
    result: dict[str, Any] = {"record": record, "zenml": zenml, "switch": None}
    if switch and (answering_engine(settings) is not None or active_serving(settings) is not None):
        result["switch"] = switch_serving(settings, f"{name}:{target}", drain_timeout_s=drain_timeout_s).model_dump()
    return result
