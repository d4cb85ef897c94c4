"""What every benchmark (and the tests that need the same) shares: percentiles, machine facts, a local HTTP server.

Bench scripts run as ``python bench/<script>.py`` (this folder is on ``sys.path``: ``from common import ...``);
the tests import it as ``bench.common`` (the repository root is on their path). Only the standard library is
imported at module level; torch is read lazily for its thread count when it is installed.
"""

from __future__ import annotations

import functools
import http.server
import os
import platform
import re
import statistics
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

# CPU features that decide how fast vector math and model inference run (the full list is recorded too).
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd", "sve")  # fmt: skip


# --------------------------------------------------------------------------------------------------- percentiles
def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None when there are none. Not rounded."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def latency_summary(samples_s: Iterable[float], digits: int = 2) -> dict[str, float | int | None]:
    """Latencies in seconds -> p50 (median) / p95 / mean / max in milliseconds, and the sample count."""
    ms = sorted(x * 1000 for x in samples_s)
    if not ms:
        return {"p50_ms": None, "p95_ms": None, "mean_ms": None, "max_ms": None, "n": 0}
    return {
        "p50_ms": round(statistics.median(ms), digits),
        "p95_ms": round(percentile(ms, 95), digits),
        "mean_ms": round(statistics.fmean(ms), digits),
        "max_ms": round(ms[-1], digits),
        "n": len(ms),
    }


# ----------------------------------------------------------------------------------------------- machine facts
def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


@functools.cache
def cpu_info() -> dict:
    """CPU model, its SIMD flags of interest and every flag: /proc/cpuinfo, else lscpu, else the platform module."""
    model, flags = "", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = value.split()
    except OSError:
        pass
    lscpu = _lscpu() if not (model and flags) else {}
    model = model or lscpu.get("Model name", "")
    flags = flags or lscpu.get("Flags", "").split()
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "simd": [f for f in SIMD_FLAGS if f in flags],
        "cpu_flags": " ".join(flags),
    }


def cpu_slug() -> str:
    """A file-name tag for this CPU: vendor + family + its widest SIMD, e.g. ``amd_epyc_avx512bf16``."""
    info = cpu_info()
    words = re.findall(r"[a-z0-9]+", info["cpu_model"].lower())
    words = [w for w in words if w not in ("processor", "cpu", "core", "tm", "r", "with", "radeon", "graphics")]
    vendor = "_".join(words[:2]) or platform.machine()
    simd = info["simd"]
    best = next((f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2", "asimd", "neon") if f in simd), "")
    return re.sub(r"_+", "_", f"{vendor}_{best.replace('_', '')}".strip("_"))


def torch_threads() -> int | None:
    """torch's intra-op thread count, or None without torch (importing torch costs ~1 s, so only when asked)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def machine(torch: bool = True) -> dict:
    """The facts every result file records: Python, CPUs, CPU model and flags, torch threads, load average."""
    facts = {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        **cpu_info(),
    }
    if torch:
        facts["torch_threads"] = torch_threads()
    facts["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return facts


# ----------------------------------------------------------------------------------------- local HTTP server
class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    """Static files without request logs; HTML declares UTF-8 (as real sites do in the header)."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".html": "text/html; charset=utf-8"}
    flat = False  # serve /<anything>/<file> as <file> from the folder (the URL's folders only shape the link)

    def translate_path(self, path: str) -> str:
        if not self.flat:
            return super().translate_path(path)
        return str(Path(self.directory) / urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1])

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


@contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler] | functools.partial) -> Iterator[str]:
    """A threading HTTP server on 127.0.0.1 (free port) in a daemon thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serve_directory(directory: Path | str, *, flat: bool = False):
    """`serve` a folder's files (``flat``: any ``/<folder>/<file>`` URL maps to ``<file>``)."""
    handler = type("FolderHandler", (QuietFileHandler,), {"flat": flat})
    return serve(functools.partial(handler, directory=str(directory)))


@contextmanager
def nx_warehouse(folder: Path, startup_timeout_s: float = 60.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """A fresh nx-27017 (MongoDB wire protocol over SQLite) on a free loopback port, its data under `folder`:
    yields (its mongodb:// URI, the server process) and stops it on exit."""
    import shutil
    import socket
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = shutil.which("nx-27017", path=str(Path(sys.executable).parent)) or "nx-27017"
    folder.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(folder / "mongo"),
         "--log-file", str(folder / "nx.log"), "--pid-file", str(folder / "nx.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"mongodb://127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(timeout=30)
