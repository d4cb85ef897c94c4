"""`poe run-twin-refresh` end to end (slow): the real ZenML pipeline over a real MongoDB-wire warehouse, the
embedded Qdrant engine, a real vLLM engine for the dataset's generations, real SFT + DPO and the real evaluation.

Refreshes killed with SIGKILL at several steps leave nothing behind that stops the next one. A refresh forced to
produce a broken twin (a learning rate that wrecks it) is registered but refused by the gate, production stays as
it was, the ledger says why; the next refresh with nothing new ends after the features step in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from llm_engineering.settings import PROJECT_ROOT, Settings
from tests.integration.llm.fixtures_llm import SAMPLE_CORPUS, link_prepared_model

pytestmark = pytest.mark.slow


def _small_configs(folder: Path) -> Path:
    """configs/twin_refresh.yaml with the dataset and evaluation cut to test size."""
    datasets = yaml.safe_load((PROJECT_ROOT / "configs" / "generate_datasets.yaml").read_text())
    datasets["parameters"]["max_extracts"] = 10
    evaluation = yaml.safe_load((PROJECT_ROOT / "configs" / "evaluating_refresh.yaml").read_text())
    evaluation["voice"].update(max_samples=8, max_pairs=8)
    evaluation["generation"]["max_samples"] = 2
    evaluation["rag"]["max_questions"] = 3
    evaluation["ragas"]["enabled"] = False
    evaluation["tracking"] = {"comet": False, "opik": False}
    refresh = yaml.safe_load((PROJECT_ROOT / "configs" / "twin_refresh.yaml").read_text())
    refresh["parameters"].update(
        datasets_config=str(folder / "datasets.yaml"), evaluation_config=str(folder / "evaluation.yaml")
    )
    for name, data in (("datasets", datasets), ("evaluation", evaluation), ("refresh", refresh)):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return folder / "refresh.yaml"


@pytest.fixture
def refresh_env(tmp_path, mongo_uri, prepared_model_dir):
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.infrastructure.local_services import find_free_port
    from llm_engineering.wiring import Container

    data_dir = tmp_path / "data"
    link_prepared_model(data_dir, prepared_model_dir)
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "MONGODB_URI": mongo_uri,
        "MONGODB_DATABASE": f"refresh_{uuid.uuid4().hex[:10]}",
        "MONGODB_EMBEDDED": "false",
        # Nothing serves users here: the refresh starts its own engine for the dataset's generations.
        "LLM_BASE_URL": f"http://127.0.0.1:{find_free_port()}/v1",
        "OPIK_URL": "",
    }
    settings = Settings(data_dir=data_dir, mongodb_uri=mongo_uri, mongodb_database=env["MONGODB_DATABASE"],
                        mongodb_embedded=False)  # fmt: skip
    container = Container(settings)
    import_warehouse(container.warehouse, SAMPLE_CORPUS, show_progress=False)
    container.close()
    return env, _small_configs(tmp_path), data_dir


def _refresh(env, config, *args, timeout=1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.twin_refresh", "--config", str(config), *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


# Steps at which the refresh is killed with SIGKILL before it is let finish: the features (mid-embedding), the
# dataset's generations (its own vLLM engine running) and SFT. Each run after a kill redoes the work cleanly.
KILL_AT = ("chunk_embed_load", "generate_samples", "train_sft")


def test_killed_refreshes_resume_a_broken_twin_is_refused_and_nothing_new_stops_early(refresh_env):
    env, config, data_dir = refresh_env
    for step in KILL_AT:
        _kill_when_running(env, config, step)
    assert not (data_dir / "refresh" / "runs.jsonl").exists()  # no killed run moved the baseline

    broken = _refresh(env, config, "--max-steps", "2", "--learning-rate", "0.5")
    assert broken.returncode == 0, broken.stdout[-4000:] + broken.stderr[-4000:]
    runs = [json.loads(line) for line in (data_dir / "refresh" / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 1 and runs[0]["outcome"] == "not_promoted", runs
    first = runs[0]
    assert first["changes"]["new"] == 21 and first["candidate"] == "llm-twin:v0001"
    assert first["decision"]["promote"] is False and first["decision"]["deciding_rule"]
    assert first["production_before"] is None and first["production_after"] is None
    assert not (data_dir / "models" / "llm-twin" / "production").exists()
    # The killed runs' generations were cached: the run that finished asked the LLM for little or nothing new.
    assert sum(first["dataset_cache_hits"].values()) > 0
    assert "keep production" in broken.stdout and "not_promoted" in broken.stdout

    started = time.monotonic()
    again = _refresh(env, config)
    seconds = time.monotonic() - started
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert "Nothing new since the last refresh" in again.stdout
    assert seconds < 120, f"a refresh with nothing new took {seconds:.0f} s"

    from zenml.client import Client

    run = Client().get_pipeline("twin_refresh").last_run
    assert "train_sft" not in run.steps and "detect_new_writing" in run.steps
    # The killed runs were marked failed, none stays "running"; the killed dataset engines are gone.
    statuses = [str(r.status) for r in Client().list_pipeline_runs(pipeline_name="twin_refresh", size=50).items]
    assert not [s for s in statuses if s.lower().endswith("running")], statuses
    records = [json.loads(p.read_text()) for p in (data_dir / "run").glob("*.pid")]
    assert not [r for r in records if _alive(r["pid"])], f"processes left running: {records}"
    assert json.loads((data_dir / "refresh" / "runs.jsonl").read_text().splitlines()[-1])["outcome"] == "nothing_new"


def _kill_when_running(env: dict, config: Path, step: str, timeout_s: float = 900) -> None:
    """Start a refresh and SIGKILL it (no cleanup runs) as soon as the ZenML run shows `step` running."""
    from zenml.client import Client

    before = _last_run_id()
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.twin_refresh", "--config", str(config), "--max-steps", "2"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            assert process.poll() is None, f"the refresh ended (exit {process.returncode}) before {step} ran"
            assert time.monotonic() < deadline, f"{step} did not start within {timeout_s:.0f} s"
            run_id = _last_run_id()
            if run_id and run_id != before:
                run = Client().get_pipeline_run(run_id)
                if step in run.steps and str(run.steps[step].status).lower().endswith("running"):
                    break
            time.sleep(0.5)
    finally:
        process.kill()
        process.wait(timeout=60)


def _last_run_id():
    from zenml.client import Client

    try:
        run = Client().get_pipeline("twin_refresh").last_run
    except (KeyError, RuntimeError, ValueError):
        return None
    return run.id if run else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
