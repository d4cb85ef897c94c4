"""Importing any project module opens no connection, starts no process and loads no model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).parents[2]

PROBE = r"""
import importlib, pkgutil, socket, subprocess, sys

events = []
socket.socket.connect = lambda self, *a, **k: events.append(("connect", a))
socket.create_connection = lambda *a, **k: events.append(("create_connection", a))
_popen_init = subprocess.Popen.__init__
def _popen(self, *a, **k):
    events.append(("popen", a[0] if a else k.get("args")))
    raise RuntimeError("no process at import time")
subprocess.Popen.__init__ = _popen

names = []
for package in ("llm_engineering", "pipelines", "steps", "tools"):
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(module.__path__, prefix=package + "."):
        importlib.import_module(info.name)
        names.append(info.name)

heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers", "selenium.webdriver.chrome.webdriver",
                           "qdrant_client", "qdrant_edge", "openai", "opik", "trl", "peft", "ragas", "comet_ml")
               if m in sys.modules)
print(len(names), "modules;", "events:", events, "heavy:", heavy)
sys.exit(1 if events or heavy else 0)
"""


def test_importing_every_module_has_no_side_effects():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "modules; events: [] heavy: []" in result.stdout
