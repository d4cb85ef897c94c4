"""Local service processes: stopping one stops everything it spawned, even after the server itself died."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time

from llm_engineering.infrastructure.local_services import LocalService, _group_alive, find_free_port

# A "server" that listens, and a worker it spawns that ignores SIGTERM (as vLLM's engine core did).
SERVER = textwrap.dedent(
    """
    import signal, socket, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    open(sys.argv[2], "w").write(str(worker.pid))
    sock = socket.socket(); sock.bind(("127.0.0.1", int(sys.argv[1]))); sock.listen()
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_server_leaves_no_orphaned_workers_after_stop(tmp_path):
    """Regression (#14): killing the vLLM server left its engine processes (3.9 GB) alive, deaf to SIGTERM."""
    port = find_free_port()
    worker_file = tmp_path / "worker.pid"
    service = LocalService(
        name="fake-server",
        host="127.0.0.1",
        port=port,
        command=[sys.executable, "-c", SERVER, str(port), str(worker_file)],
        state_dir=tmp_path,
        startup_timeout_s=20,
    )
    assert service.start()
    deadline = time.monotonic() + 10
    while not worker_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    leader, worker = service.managed_pid(), int(worker_file.read_text())
    os.kill(leader, signal.SIGKILL)  # the server dies; its worker does not
    os.waitpid(leader, 0)
    assert _alive(worker) and service.managed_pid() is None and service.orphans()

    assert service.stop(timeout_s=1.0) is True  # SIGTERM is ignored: the group gets SIGKILL
    assert not _alive(worker) and not _group_alive(leader)
    assert not service.pid_file.exists() and not service.orphans()
    assert service.stop() is False  # nothing left to stop
