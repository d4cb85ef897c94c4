"""Experiment tracking with Comet ML: one experiment per training run, offline unless a key is configured.

Without `COMET_API_KEY` the run is an offline experiment: Comet writes `<DATA_DIR>/comet/<key>.zip` when it
ends (no key, no network, no error). Upload it later with Comet's own command:

    COMET_API_KEY=... comet upload data/local/comet/<key>.zip

With a key the experiment goes online (and falls back to offline, with a warning, when Comet is unreachable).

The trainers report through transformers' own CometCallback (`report_to="comet_ml"`): it finds the experiment
started here (comet_ml.start reuses a running experiment whose key parameters match) and logs every logged
step. The SFT and DPO steps land under the Comet contexts `sft` and `dpo` (metric names `sft_train/loss`,
`dpo_train/rewards/accuracies`, ...). This module adds the run's hyperparameters, dataset version and hash,
final metrics and the model card.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger

COMET_DIRNAME = "comet"


def comet_offline_dir(data_dir: Path) -> Path:
    return Path(data_dir) / COMET_DIRNAME


def comet_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("comet_ml") is not None


class NullTracker:
    """Tracking switched off (config `tracking.comet: false`, or comet_ml not installed)."""

    mode = "off"
    report_to = "none"
    archive: str | None = None
    url: str | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield

    def log_parameters(self, params: dict[str, Any], prefix: str | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, Any], prefix: str | None = None, step: int | None = None) -> None:
        pass

    def log_text_asset(self, text: str, file_name: str) -> None:
        pass

    def log_others(self, values: dict[str, Any]) -> None:
        pass

    def end(self) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode}


class CometTracker:
    """A running Comet experiment (online or offline) shared by the SFT and DPO trainers of one run."""

    report_to = "comet_ml"

    def __init__(self, experiment: Any, mode: str, offline_dir: Path) -> None:
        self.experiment = experiment
        self.mode = mode
        self.offline_dir = offline_dir
        self.archive: str | None = None
        self.url: str | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        previous = self.experiment.context
        self.experiment.context = name
        try:
            yield
        finally:
            self.experiment.context = previous

    def log_parameters(self, params: dict[str, Any], prefix: str | None = None) -> None:
        self.experiment.log_parameters(params, prefix=prefix)

    def log_metrics(self, metrics: dict[str, Any], prefix: str | None = None, step: int | None = None) -> None:
        numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        self.experiment.log_metrics(numeric, prefix=prefix, step=step)

    def log_text_asset(self, text: str, file_name: str) -> None:
        self.experiment.log_asset_data(text, name=file_name)

    def log_others(self, values: dict[str, Any]) -> None:
        self.experiment.log_others(values)

    def end(self) -> None:
        key = self.experiment.get_key()
        self.experiment.end()
        if self.mode == "offline":
            archives = sorted(self.offline_dir.glob(f"{key}*.zip"), key=lambda p: p.stat().st_mtime)
            self.archive = str(archives[-1]) if archives else None
            if self.archive:
                logger.info(f"Comet offline experiment saved: {self.archive} (upload: `comet upload {self.archive}`)")
        else:
            self.url = getattr(self.experiment, "url", None)

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "archive": self.archive, "url": self.url, "key": self.experiment.get_key()}


class _DropMissingKeyWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Comet API Key is not configured" not in record.getMessage()


def no_comet_error_reports() -> None:
    """comet_ml reports its own internal errors to Sentry over the network: off unless the user turned it on."""
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")


def quiet_missing_key_warning() -> None:
    """transformers warns 'set COMET_API_KEY to enable Comet logging' whenever no key is set, even when Comet is
    off or logs offline (which works): noise that reads like an error."""
    integration_logger = logging.getLogger("transformers.integrations.integration_utils")
    if not any(isinstance(f, _DropMissingKeyWarning) for f in integration_logger.filters):
        integration_logger.addFilter(_DropMissingKeyWarning())


def start_tracking(
    *,
    enabled: bool,
    data_dir: Path,
    project: str,
    run_name: str,
    api_key: str | None = None,
    tags: list[str] | None = None,
) -> CometTracker | NullTracker:
    """Start the run's Comet experiment (offline unless `api_key`), or a no-op tracker when disabled.

    Sets the COMET_* environment the transformers callback reads, so it reuses this experiment instead of
    trying to go online (which, with no key, crashes training with "requires an API key").
    """
    no_comet_error_reports()
    if not enabled:
        return NullTracker()
    if not comet_installed():
        logger.warning("comet_ml is not installed: training runs without experiment tracking")
        return NullTracker()
    offline_dir = comet_offline_dir(data_dir)
    offline_dir.mkdir(parents=True, exist_ok=True)
    online = bool(api_key)
    os.environ["COMET_START_ONLINE"] = "true" if online else "false"
    os.environ["COMET_OFFLINE_DIRECTORY"] = str(offline_dir)
    os.environ["COMET_PROJECT_NAME"] = project
    os.environ.setdefault("COMET_LOG_ASSETS", "false")  # checkpoints stay on disk, not in the experiment
    os.environ.setdefault("COMET_AUTO_LOG_GIT_PATCH", "false")
    if not online:
        quiet_missing_key_warning()
    import comet_ml

    def _config() -> Any:
        return comet_ml.ExperimentConfig(
            name=run_name,
            tags=tags,
            offline_directory=str(offline_dir),
            log_git_patch=False,
            log_code=False,
            auto_output_logging="simple",
            auto_log_co2=False,
        )

    if online:
        try:
            experiment = comet_ml.start(api_key=api_key, project_name=project, online=True, experiment_config=_config())
            return CometTracker(experiment, "online", offline_dir)
        except Exception as exc:  # network down, bad key: keep training, track offline
            logger.warning(f"Comet online experiment failed ({exc}); tracking offline under {offline_dir}")
            os.environ["COMET_START_ONLINE"] = "false"
    try:
        experiment = comet_ml.start(project_name=project, online=False, experiment_config=_config())
    except Exception as exc:  # tracking must never stop a training run
        logger.warning(f"Comet offline experiment could not start ({exc}): training runs without tracking")
        os.environ.pop("COMET_START_ONLINE", None)
        return NullTracker()
    return CometTracker(experiment, "offline", offline_dir)
