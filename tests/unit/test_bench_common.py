"""bench/common.py: the percentile, machine facts and local HTTP server that the benchmarks and tests share."""

from __future__ import annotations

import http.server
import re
import urllib.request

import pytest

from bench.common import cpu_info, cpu_slug, latency_summary, machine, percentile, serve, serve_directory


def test_percentile_is_nearest_rank_and_none_when_empty():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0) == 1.0 and percentile(values, 50) == 3.0 and percentile(values, 100) == 5.0
    assert percentile(range(1, 101), 95) == 95
    assert percentile([], 50) is None


def test_latency_summary_in_milliseconds():
    summary = latency_summary([0.001, 0.002, 0.003, 0.010])
    assert summary == {"p50_ms": 2.5, "p95_ms": 10.0, "mean_ms": 4.0, "max_ms": 10.0, "n": 4}
    assert latency_summary([])["n"] == 0


def test_machine_facts_name_the_cpu_and_its_simd_flags():
    info = cpu_info()
    assert info["cpu_model"]
    assert set(info["simd"]) <= set(info["cpu_flags"].split())
    assert re.fullmatch(r"[a-z0-9_]+", cpu_slug())
    facts = machine(torch=False)
    assert facts["cpu_count"] >= 1 and len(facts["load_average_at_start"]) == 3 and "torch_threads" not in facts


def test_serve_directory_flat_maps_any_folder_to_the_file_and_declares_utf8(tmp_path):
    (tmp_path / "page.html").write_text("<p>héllo</p>", encoding="utf-8")
    with (
        serve_directory(tmp_path, flat=True) as base,
        urllib.request.urlopen(f"{base}/medium/page.html", timeout=10) as response,  # noqa: S310 - loopback
    ):
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.read().decode() == "<p>héllo</p>"
    with pytest.raises(OSError):  # stopped on exit
        urllib.request.urlopen(f"{base}/medium/page.html", timeout=2)  # noqa: S310


def test_serve_runs_a_handler_class():
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            pass

    with serve(Hello) as base, urllib.request.urlopen(f"{base}/x", timeout=10) as response:  # noqa: S310
        assert response.read() == b"hi"
