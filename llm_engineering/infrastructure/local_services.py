"""Start, find and stop the embedded services (MongoDB-wire server, vLLM, llama.cpp) as detached process groups.

Each service runs in its own session (its own process group: the engine workers a server spawns are in it), with
a pid record (`data_dir/run/<name>.pid`: pid, pgid, host, port, start time) and a log under `data_dir/logs`, so
a later command (`poe local-infrastructure-down`) stops the whole group of what an earlier one started. Every
process of the group also carries `LLM_TWIN_SERVICE=<name>@<data_dir>` in its environment: processes left behind
by a killed server are found even when the record was overwritten or lost, and are stopped by `down` and before
a new `up`. A service counts as running when its port answers: whoever listens there (our process or a real
server) is used as is.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from llm_engineering.domain.errors import ServiceUnavailableError
from llm_engineering.infrastructure.log_filter import SECRET_ENV

SERVICE_MARKER = "LLM_TWIN_SERVICE"
_SECRET_NAME = re.compile(r"(?i)key|token|password|secret")


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


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return True


def process_alive(pid: int) -> bool:
    """A live, non-zombie process (Linux /proc)."""
    return _pid_alive(pid) and not _is_zombie(pid)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat[2]) == pgid and stat[0] != b"Z":
            members.append(int(entry.name))
    return members


def marked_processes(marker: str) -> dict[int, int]:
    """pid -> pgid of every live process whose environment carries `LLM_TWIN_SERVICE=<marker>` (Linux /proc;
    processes of other users are unreadable and skipped)."""
    wanted = f"{SERVICE_MARKER}={marker}".encode()
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if wanted in environ.split(b"\0") and not _is_zombie(int(entry.name)):
                found[int(entry.name)] = os.getpgid(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return found


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

    @property
    def marker(self) -> str:
        return f"{self.name}@{Path(self.state_dir).resolve()}"

    def is_running(self) -> bool:
        if not port_is_open(self.host, self.port):
            return False
        return self.ready_check() if self.ready_check else True

    def record(self) -> dict[str, object] | None:
        """What the last start wrote: {"pid", "pgid", "host", "port", "started_at"} (a bare pid from older runs)."""
        try:
            text = self.pid_file.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, int):
            return {"pid": data, "pgid": data}
        return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None

    def _recorded_pid(self) -> int | None:
        record = self.record()
        return int(record["pid"]) if record else None

    def _recorded_pgid(self) -> int | None:
        record = self.record()
        return int(record.get("pgid") or record["pid"]) if record else None

    def managed_pid(self) -> int | None:
        """The pid of the process we started, if it is still alive."""
        pid = self._recorded_pid()
        return pid if pid is not None and _pid_alive(pid) and not _is_zombie(pid) else None

    def groups(self) -> set[int]:
        """Every live process group of this service: the recorded one, and those of marked processes."""
        found = set(marked_processes(self.marker).values())
        pgid = self._recorded_pgid()
        if pgid is not None and _group_alive(pgid):
            found.add(pgid)
        return found

    def leftovers(self) -> dict[int, int]:
        """pid -> pgid of processes this service started that no live server of it leads (its server was killed,
        or a start overwrote the record): they hold memory and ports and must be stopped. Found by the marker in
        their environment and by membership of a group of this service (a process that renames itself, as
        vLLM's `VLLM::EngineCore` does, overwrites what /proc shows of its environment)."""
        leader = self.managed_pid()
        own = os.getpgid(leader) if leader is not None else None
        found = {pid: pgid for pid, pgid in marked_processes(self.marker).items() if pgid != own}
        groups = set(found.values())
        recorded = self._recorded_pgid()
        if recorded is not None and recorded != own:
            groups.add(recorded)
        for pgid in groups:
            found.update(dict.fromkeys(group_members(pgid), pgid))
        return found

    def orphans(self) -> bool:
        """True when processes this service started are alive without their server (see `leftovers`)."""
        if self.leftovers():
            return True
        pid = self._recorded_pid()
        return pid is not None and self.managed_pid() is None and _group_alive(self._recorded_pgid() or pid)

    def state(self) -> dict[str, object]:
        """For status commands: running/stopped, pid/pgid/port, and any processes left behind."""
        leftovers = self.leftovers()
        return {
            "running": self.is_running(),
            "pid": self.managed_pid(),
            "pgid": self._recorded_pgid() if self.managed_pid() else None,
            "host": self.host,
            "port": self.port,
            "leftover_pids": sorted(leftovers),
            "log_file": str(self.log_file),
        }

    def start(self) -> bool:
        """Start the service unless something already answers on its port. Returns True if it started it.
        Processes a previous start left behind (a killed server's workers) are stopped first."""
        if self.is_running():
            logger.info(f"{self.name}: already running on {self.host}:{self.port}")
            return False
        if self.managed_pid() is not None:
            # Our server is alive but not ready yet (another command is starting it): wait for it, never start a
            # second one beside it.
            self._wait_ready(process=None)
            return False
        if self.orphans():
            logger.warning(f"{self.name}: stopping processes a previous server left behind before starting")
            self.stop()
        if port_is_open(self.host, self.port):
            # The port is taken but not ready: wait a little before declaring it foreign.
            self._wait_ready(process=None)
            return False
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        logger.info(f"{self.name}: starting on {self.host}:{self.port} (log: {self.log_file})")
        # The server's output reaches its log through the redacting filter (log_filter), which leads the group.
        secret_names = ",".join(name for name in self.env if _SECRET_NAME.search(name))
        command = [sys.executable, "-m", "llm_engineering.infrastructure.log_filter", str(self.log_file), "--"]
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - fixed argv built by this project
                [*command, *self.command],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env, SERVICE_MARKER: self.marker, SECRET_ENV: secret_names},
                start_new_session=True,  # its own session and process group, which its workers join
            )
        record = {
            "pid": process.pid,
            "pgid": process.pid,
            "host": self.host,
            "port": self.port,
            "started_at": time.time(),
        }
        self.pid_file.write_text(json.dumps(record))
        self._wait_ready(process)
        logger.info(f"{self.name}: ready on {self.host}:{self.port} (pid {process.pid}, process group {process.pid})")
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
        """Stop what this project started (never a foreign server): every process group of the service (the
        recorded one and those of marked processes), so workers a server spawned (vLLM's engine core) go too,
        even when the server itself was killed. SIGTERM first, SIGKILL for whatever ignores it. Returns True if
        anything was stopped."""
        groups = self.groups()
        if not groups:
            self.pid_file.unlink(missing_ok=True)
            return False
        leader = "" if self.managed_pid() else " (its server is gone: stopping the processes it left behind)"
        logger.info(f"{self.name}: stopping process group(s) {', '.join(map(str, sorted(groups)))}{leader}")
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._any_alive(groups):
            self._reap(groups)
            time.sleep(0.1)
        if self._any_alive(groups):
            logger.warning(f"{self.name}: process group(s) ignored SIGTERM, killing them")
            for pgid in groups:
                _signal_group(pgid, signal.SIGKILL)
            for _ in range(50):
                self._reap(groups)
                if not self._any_alive(groups):
                    break
                time.sleep(0.1)
        # Dead members linger as zombies until their parent (init, for a killed server's workers) reaps them.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(_group_alive(pgid) for pgid in groups):
            self._reap(groups)
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _any_alive(self, groups: set[int]) -> bool:
        return any(self._group_has_live(pgid) for pgid in groups) or bool(marked_processes(self.marker))

    @staticmethod
    def _group_has_live(pgid: int) -> bool:
        """A group counts as gone when only zombies are left in it (our own children, reaped by `_reap`)."""
        return bool(group_members(pgid))

    @staticmethod
    def _reap(groups: set[int]) -> None:
        for pgid in groups:
            try:
                os.waitpid(pgid, os.WNOHANG)  # reap the leader if it is our child
            except ChildProcessError:
                pass
