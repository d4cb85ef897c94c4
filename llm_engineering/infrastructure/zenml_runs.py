"""ZenML runs left "running" by a process that died (kill -9, OOM) are marked failed at the next pipeline start.

The local orchestrator runs a pipeline inside the command's own process, so a killed command leaves its run and
its current step "running" in ZenML's store for ever. Every command that runs a pipeline holds a record
(`<ZENML_CONFIG_PATH>/llm-twin-runs/<pid>.json`, its start time) for as long as it runs. At the next start, a
run still active in the store whose creation no live record covers was left by a dead process: it and its
active steps are marked failed, with the reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from loguru import logger

from llm_engineering.infrastructure.local_services import process_alive

ACTIVE_STATUSES = ("initializing", "provisioning", "queued", "running")
REASON = "its process ended without finishing it (killed?); marked failed at the next pipeline start"


def _records_dir() -> Path:
    root = os.environ.get("ZENML_CONFIG_PATH")
    if not root:  # ZenML's own default; this project always sets the variable (zenml_env.configure_zenml)
        from zenml.utils.io_utils import get_global_config_directory

        root = get_global_config_directory()
    return Path(root) / "llm-twin-runs"


def live_pipeline_starts() -> list[float]:
    """Start times of other live processes that are running pipelines (stale records are removed)."""
    starts = []
    for record in _records_dir().glob("*.json"):
        try:
            data = json.loads(record.read_text())
            pid, started = int(data["pid"]), float(data["started_at"])
        except (OSError, ValueError, KeyError, TypeError):
            record.unlink(missing_ok=True)
            continue
        if pid == os.getpid():
            continue
        if process_alive(pid):
            starts.append(started)
        else:
            record.unlink(missing_ok=True)
    return starts


@contextmanager
def pipeline_process_record() -> Iterator[None]:
    """Mark this process as running a pipeline while the block runs."""
    folder = _records_dir()
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / f"{os.getpid()}.json"
    record.write_text(json.dumps({"pid": os.getpid(), "started_at": time.time()}))
    try:
        yield
    finally:
        record.unlink(missing_ok=True)


def _timestamp(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def fail_orphaned_runs() -> list[str]:
    """Mark active runs (and their active steps) that no live process owns as failed; returns their names."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate, StepRunUpdate

    live = live_pipeline_starts()
    client = Client()
    failed = []
    for status in ACTIVE_STATUSES:
        for run in client.list_pipeline_runs(status=status, size=100, hydrate=False).items:
            created = _timestamp(run.created)
            if any(started <= created + 1.0 for started in live):
                continue  # a live process started before this run was created may be running it
            for step in run.steps.values():
                if step.status in ACTIVE_STATUSES:
                    update = StepRunUpdate(status=ExecutionStatus.FAILED, end_time=datetime.now(UTC))
                    client.zen_store.update_run_step(step.id, update)
            update = PipelineRunUpdate(status=ExecutionStatus.FAILED, status_reason=REASON)
            client.zen_store.update_run(run.id, update)
            failed.append(run.name)
    if failed:
        logger.warning(
            f"ZenML: {len(failed)} run(s) left running by a process that ended were marked failed: {', '.join(failed)}"
        )
    return failed
