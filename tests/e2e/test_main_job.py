"""README command (1), the main job, end to end on embedded defaults: warehouse import → ZenML feature
pipeline → hybrid retrieval → vLLM + RAG API answer over HTTP → everything it started is stopped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm_engineering.infrastructure.local_services import find_free_port, port_is_open

PROJECT_ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_main_job_answers_with_sources_and_cleans_up(tmp_path):
    mongo_port, llm_port, api_port = find_free_port(), find_free_port(), find_free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "data"),
        "MONGODB_URI": f"mongodb://127.0.0.1:{mongo_port}",
        "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
        "INFERENCE_PORT": str(api_port),
    }
    result = subprocess.run([sys.executable, "-m", "tools.demo"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=900)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]

    assert "articles      14" in out and "Elena Marchetti: 14 articles, 6 posts, 1 repositories" in out
    assert re.search(r"truncated chunks\s+0\n", out), out
    assert re.search(r"new / changed / unchanged / removed\s+21 / 0 / 0 / 0", out), out
    retrieval = out.split("=== 4.")[1].split("=== 5.")[0]
    assert "https://medium.com/@elena.marchetti/chunk-by-tokens-not-characters" in retrieval
    answer = out.split("=== 5.")[1]
    assert "Answer: " in answer and answer.split("Answer: ")[1].split("Sources:")[0].strip()
    assert "  [1] " in answer and "https://" in answer.split("Sources:")[1]
    assert "Timings: " in answer and "generation" in answer

    for port in (mongo_port, llm_port, api_port):
        assert not port_is_open("127.0.0.1", port), f"port {port} still open after the main job"
