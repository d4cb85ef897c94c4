"""Fault injection: a pipeline process killed mid-step leaves its ZenML run "running" (issue #25, finding 9); the
next pipeline start marks it failed, and never a run that a live process is still executing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from llm_engineering.settings import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from zenml import pipeline, step
    from llm_engineering.infrastructure.zenml_runs import pipeline_process_record

    @step
    def doomed() -> int:
        if sys.argv[1] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)  # as `kill -9` of the command mid-step
        open(sys.argv[2], "w").write("started")
        time.sleep(120)  # a live run: must be left alone
        return 1

    @pipeline(enable_cache=False)
    def killed_pipeline():
        doomed()

    with pipeline_process_record():
        killed_pipeline()
    """
)

CHECK = textwrap.dedent(
    """
    import json
    from zenml.client import Client
    from llm_engineering.infrastructure.zenml_runs import fail_orphaned_runs
    failed = fail_orphaned_runs()
    runs = Client().list_pipeline_runs(pipeline_name="killed_pipeline", size=10, sort_by="asc:created").items
    print(json.dumps({"failed": failed, "statuses": [str(r.status) for r in runs],
                      "steps": [str(s.status) for r in runs for s in r.steps.values()]}))
    """
)


@pytest.mark.slow
def test_a_killed_pipeline_run_is_marked_failed_at_the_next_start(tmp_path):
    import json

    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml"), "ZENML_ANALYTICS_OPT_IN": "false"}
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180, **kwargs
        )

    killed = run(str(script), "kill", "-")
    assert killed.returncode == -9, killed.stderr[-2000:]
    flag = tmp_path / "started"
    live = subprocess.Popen(  # noqa: S603 - a live pipeline process beside the check
        [sys.executable, str(script), "live", str(flag)], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import time

        deadline = time.monotonic() + 120
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert flag.exists(), "the live pipeline did not start its step"
        check = run("-c", CHECK)
        assert check.returncode == 0, check.stderr[-2000:]
        result = json.loads(check.stdout.strip().splitlines()[-1])
    finally:
        live.kill()
        live.wait(timeout=30)
    assert len(result["failed"]) == 1
    assert result["statuses"] == ["failed", "running"]  # the killed run failed; the live one untouched
    assert result["steps"][0] == "failed"
