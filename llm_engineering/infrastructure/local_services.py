"""Start, find and stop the embedded services (MongoDB-wire server, vLLM) as detached local processes.

Each service keeps a pid file and a log file under `data_dir/run` and `data_dir/logs`, so a later command
(`poe local-infrastructure-down`) can stop what an earlier one started. A service counts as running when its
port accepts TCP connections: whoever listens there (our process or a real server) is used as is.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from llm_engineering.domain.errors import ServiceUnavailableError


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    """Any process left in the group (a service started with its own session has pgid == its pid)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@dataclass
class LocalService:
    """A detached local server process identified by name, host and port."""

    name: str
    host: str
    port: int
    command: Sequence[str]
    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    startup_timeout_s: float = 30.0
    # Extra readiness check beyond an open port (e.g. an HTTP health endpoint).
    ready_check: Callable[[], bool] | None = None

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def is_running(self) -> bool:
        if not port_is_open(self.host, self.port):
            return False
        return self.ready_check() if self.ready_check else True

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def managed_pid(self) -> int | None:
        """The pid of the process we started, if it is still alive."""
        pid = self._recorded_pid()
        return pid if pid is not None and _pid_alive(pid) else None

    def orphans(self) -> bool:
        """True when the process we started is gone but processes it spawned (its group) are still alive."""
        pid = self._recorded_pid()
        return pid is not None and not _pid_alive(pid) and _group_alive(pid)

    def start(self) -> bool:
        """Start the service unless something already answers on its port. Returns True if it started it."""
        if self.is_running():
            logger.info(f"{self.name}: already running on {self.host}:{self.port}")
            return False
        if self.managed_pid() is None and port_is_open(self.host, self.port):
            # The port is taken but not ready: wait a little before declaring it foreign.
            self._wait_ready(process=None)
            return False
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        logger.info(f"{self.name}: starting on {self.host}:{self.port} (log: {self.log_file})")
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - fixed argv built by this project
                list(self.command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,  # outlives the command that started it, until stop()
            )
        self.pid_file.write_text(str(process.pid))
        self._wait_ready(process)
        logger.info(f"{self.name}: ready on {self.host}:{self.port} (pid {process.pid})")
        return True

    def _wait_ready(self, process: subprocess.Popen | None) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.is_running():
                return
            if process is not None and process.poll() is not None:
                raise ServiceUnavailableError(
                    f"{self.name} exited with code {process.returncode} while starting; "
                    f"see {self.log_file}:\n{self.tail_log()}"
                )
            time.sleep(0.2)
        raise ServiceUnavailableError(
            f"{self.name} did not become ready on {self.host}:{self.port} within {self.startup_timeout_s:.0f}s; "
            f"see {self.log_file}:\n{self.tail_log()}"
        )

    def tail_log(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout_s: float = 15.0) -> bool:
        """Stop what this project started (never a foreign server): the whole process group, so workers that a
        server spawned (vLLM's engine core) go too, even when the server itself was killed. SIGTERM first,
        SIGKILL for whatever ignores it. Returns True if anything was stopped."""
        pgid = self._recorded_pid()
        if pgid is None or not _group_alive(pgid):
            self.pid_file.unlink(missing_ok=True)
            return False
        leader = "" if _pid_alive(pgid) else " (its leader is gone: stopping the processes it left behind)"
        logger.info(f"{self.name}: stopping process group {pgid}{leader}")
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(pgid):
            try:
                os.waitpid(pgid, os.WNOHANG)  # reap if it is our child
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if _group_alive(pgid):
            logger.warning(f"{self.name}: process group {pgid} ignored SIGTERM, killing it")
            _signal_group(pgid, signal.SIGKILL)
            for _ in range(50):
                if not _group_alive(pgid):
                    break
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True
