"""Fault injection: `kill -9` of a server this project started (issue #25, finding 2).

The server is started the way the project starts its servers (`LocalService`, and through the real commands
`tools.llm_server` / `tools.local_infra` with a stand-in vLLM interpreter): a process that listens, answers
`GET /v1/models` and spawns a worker that ignores SIGTERM, as vLLM's engine core does. After `kill -9` of the
server, status names what it left behind, a new start stops those processes first (no second server beside
them), and `down` leaves nothing.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llm_engineering.infrastructure.local_services import SERVICE_MARKER, LocalService, find_free_port
from llm_engineering.settings import PROJECT_ROOT

# A stand-in for `python -m vllm.entrypoints.openai.api_server ... --port P`: a worker deaf to SIGTERM, then HTTP.
FAKE_VLLM = textwrap.dedent(
    """
    import http.server, json, os, subprocess, sys
    port = int(sys.argv[sys.argv.index("--port") + 1])
    print(f"args: api_key={os.environ.get('VLLM_API_KEY')} key by value {os.environ.get('VLLM_API_KEY')}", flush=True)
    print("connecting to mongodb://twin:pw-in-uri-25@127.0.0.1:1/", flush=True)
    subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"data": [{"id": "x"}]}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Models).serve_forever()
    """
)


def _marked(marker: str) -> list[int]:
    from llm_engineering.infrastructure.local_services import marked_processes

    return sorted(marked_processes(marker))


def _server_of(leader: int) -> int:
    """The server process: the child of the group's leader (the redacting log filter)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{leader}/task/{leader}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError("no server process under the log filter")


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.05)


def _kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _service(tmp_path: Path) -> LocalService:
    script = tmp_path / "fake_vllm.py"
    script.write_text(FAKE_VLLM)
    return LocalService(
        name="fake-vllm",
        host="127.0.0.1",
        port=(port := find_free_port()),
        command=[sys.executable, str(script), "--port", str(port)],
        state_dir=tmp_path,
        env={"VLLM_API_KEY": "sk-vllm-key-25"},
        startup_timeout_s=20,
    )


def _wait_marked(marker: str, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while len(found := _marked(marker)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_a_new_start_after_kill9_stops_what_the_killed_server_left(tmp_path):
    service = _service(tmp_path)
    assert service.start()
    record = service.record()
    assert record["pgid"] == record["pid"] and record["port"] == service.port
    first = _wait_marked(service.marker, 3)  # log filter + server + worker, one group
    assert len({os.getpgid(pid) for pid in first}) == 1
    _kill9(_server_of(service.managed_pid()))  # the server dies; the filter follows it, the worker stays
    deadline = time.monotonic() + 10
    while service.managed_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = _marked(service.marker)
    assert len(worker) == 1 and service.state()["leftover_pids"] == worker and service.orphans()

    assert service.start()  # stops the leftover worker first, then one new server
    now = _wait_marked(service.marker, 3)
    assert worker[0] not in now and len(now) == 3 and service.state()["leftover_pids"] == []
    assert service.stop(timeout_s=1.0) and _marked(service.marker) == []


def test_killing_the_group_leader_takes_the_server_with_it(tmp_path):
    service = _service(tmp_path)
    assert service.start()
    _wait_marked(service.marker, 3)
    _kill9(service.managed_pid())  # the leader (log filter): the server gets SIGTERM (PR_SET_PDEATHSIG)
    deadline = time.monotonic() + 30  # generous: CI boxes can be loaded
    # Wait for both: the server's exit (marker gone) and the record's pid gone (the killed leader is reaped
    # asynchronously, so the two are seen apart on a busy box).
    while (len(_marked(service.marker)) > 1 or service.is_running()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_marked(service.marker)) == 1 and not service.is_running()  # only the SIGTERM-deaf worker
    service.pid_file.unlink()  # lost or overwritten: the environment marker still finds the worker
    assert service.orphans() and len(service.leftovers()) == 1
    assert service.stop(timeout_s=1.0) is True
    assert _marked(service.marker) == [] and service.stop() is False


def test_the_server_log_is_redacted(tmp_path):
    service = _service(tmp_path)
    assert service.start()
    service.stop()
    text = service.log_file.read_text()
    assert "api_key=***" in text and "key by value ***" in text and "mongodb://***@127.0.0.1:1/" in text
    assert "sk-vllm-key-25" not in text and "pw-in-uri-25" not in text
    assert "sk-vllm-key-25" not in " ".join(service.command)  # never on a command line (ps)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_commands_after_kill9_of_the_llm_server(tmp_path):
    """`run-llm-server`, `kill -9`, `local-infrastructure-status`, `run-llm-server`, `kill -9`,
    `local-infrastructure-down`: no second server beside the leftovers, and nothing left at the end."""
    python = tmp_path / "python"
    (tmp_path / "fake_vllm.py").write_text(FAKE_VLLM)
    python.write_text(f'#!/bin/sh\nshift 2\nexec {sys.executable} {tmp_path / "fake_vllm.py"} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "VLLM_PYTHON": str(python),
        "LLM_MODEL_ID": str(tmp_path),  # an existing local path is served as is
        "LLM_BASE_URL": f"http://127.0.0.1:{find_free_port()}/v1",
        "MONGODB_URI": f"mongodb://127.0.0.1:{find_free_port()}",
        "LLM_ENGINE": "vllm",
    }
    marker = f"vllm-server@{data_dir.resolve()}"
    up = _cli(["tools.llm_server", "up"], env)
    assert up.returncode == 0, up.stderr
    first = _wait_marked(marker, 3)
    record = json.loads((data_dir / "run" / "vllm-server.pid").read_text())
    _kill9(_server_of(record["pid"]))
    _wait_gone(record["pid"])  # the log filter follows its server within a second
    status = _cli(["tools.local_infra", "status"], env)
    assert status.returncode == 0 and "left behind" in status.stdout, status.stdout + status.stderr

    again = _cli(["tools.llm_server", "up"], env)
    assert again.returncode == 0, again.stderr
    second = _wait_marked(marker, 3)
    assert not set(first) & set(second) and len(second) == 3  # the old worker was stopped, one new server
    record = json.loads((data_dir / "run" / "vllm-server.pid").read_text())
    _kill9(_server_of(record["pid"]))
    down = _cli(["tools.local_infra", "down"], env)
    assert down.returncode == 0 and "LLM (vLLM): stopped" in down.stdout, down.stdout + down.stderr
    assert _marked(marker) == []
    assert f"{SERVICE_MARKER}=" not in up.stdout + up.stderr  # nothing of the environment is echoed
