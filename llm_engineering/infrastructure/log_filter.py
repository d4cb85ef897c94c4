"""Run a local server with its output masked for secrets on the way to its log file (every LocalService uses it).

python -m llm_engineering.infrastructure.log_filter LOG_FILE -- COMMAND...

The server (vLLM, llama.cpp, nx-27017) writes to a pipe; each line goes through `redact_credentials` (URI
credentials, key=value secrets, bearer tokens, and the exact values of the environment variables named in
LLM_TWIN_SECRET_ENV, e.g. VLLM_API_KEY) before it is appended to the log. The filter leads the server's process
group, forwards SIGTERM/SIGINT/SIGHUP to it, exits with its exit code when it exits, and the server gets SIGTERM
if the filter is killed (PR_SET_PDEATHSIG). Imports nothing heavy.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from typing import IO

from llm_engineering.domain.redaction import redact_credentials, register_secrets

SECRET_ENV = "LLM_TWIN_SECRET_ENV"
PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: log_filter LOG_FILE -- COMMAND...", file=sys.stderr)
        return 2
    log_path, command = argv[0], argv[2:]
    names = [name for name in os.environ.get(SECRET_ENV, "").split(",") if name]
    register_secrets(os.environ.get(name) for name in names)
    child_env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    with open(log_path, "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(  # noqa: S603 - the service's own argv
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call, before exec
            )
        except OSError as exc:
            log.write(f"cannot start {command[0]}: {exc}\n".encode())
            return 127
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda received, _frame: child.send_signal(received))
        reader = threading.Thread(target=_copy, args=(child.stdout, log), daemon=True)
        reader.start()
        code = child.wait()
        # Workers the server spawned may hold the pipe open after it died: wait a little for its last lines only.
        reader.join(timeout=0.5)
        return 128 - code if code < 0 else code  # killed by a signal: the shell's convention


def _copy(stream: IO[bytes], log: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        log.write(redact_credentials(line.decode("utf-8", "replace")).encode("utf-8"))


def _die_with_parent() -> None:
    """The server gets SIGTERM when this filter dies (kill -9 of the group's leader does not orphan it)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the process group still lets `down` stop it
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
