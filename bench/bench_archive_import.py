"""Archive import throughput: a 1,000-item export per format, imported into a fresh embedded warehouse, twice.

    .venv/bin/python bench/bench_archive_import.py [--items 1000] [--output bench/results/archive_import.json]

Exports are built by tests/fixtures/archives/build.py in each platform's format, with generated posts of ~700
words (Medium, Substack: whole HTML pages / body fragments through the crawlers' trafilatura extraction) and
LinkedIn shares of ~60 words (CSV rows, no HTML). Each is zipped, imported with `ArchiveImporter` (read +
check everything, then upsert over TCP into nx-27017), then imported again (must add 0). Items/s counts the
items of the export (published or not) over the wall time of the whole import, server already running; items
per CPU-second counts them over the importer process's CPU time (the warehouse server's excluded), which a busy
machine disturbs less than the wall time.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.archives import build  # noqa: E402
from tests.fixtures.archives import corpus as c  # noqa: E402

WORDS = [
    "tide",
    "gauge",
    "harbour",
    "channel",
    "silt",
    "survey",
    "datum",
    "chart",
    "buoy",
    "pilot",
    "draught",
    "quay",
    "dredge",
    "estuary",
    "sounding",
    "sonar",
    "current",
    "surge",
    "wind",
    "ebb",
    "flood",
    "bank",
    "sandbar",
    "ferry",
    "mooring",
    "anchor",
    "wave",
    "swell",
    "benchmark",
    "residual",
]


def _paragraph(rng: random.Random, words: int) -> str:
    sentences = []
    while sum(len(s.split()) for s in sentences) < words:
        sentence = " ".join(rng.choices(WORDS, k=rng.randint(8, 18)))
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
    return " ".join(sentences)


def pieces(n: int, kind: str, seed: int = 19) -> list[c.Piece]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        day = f"20{10 + i % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        if kind == "linkedin":
            link = f"https://www.linkedin.com/feed/update/urn:li:share:{7100000000000000000 + i}"
            out.append(c.Piece(f"s{i}", c.INES, "", [_paragraph(rng, 30), _paragraph(rng, 30)], link, day, kind="post"))
            continue
        slug = f"story-number-{i}-{i:012x}"
        link = f"https://medium.com/@{c.INES_HANDLE}/{slug}" if kind == "medium" else f"{c.TOMASZ_SITE}/p/{slug}"
        out.append(
            c.Piece(
                f"p{i}",
                c.INES,
                f"Story number {i}",
                [_paragraph(rng, 60) for _ in range(12)],
                link,
                day,
                subtitle=f"Notes on soundings, part {i}",
                heading="What the soundings say",
            )  # fmt: skip
        )
    return out


def make_export(kind: str, n: int, root: Path) -> Path:
    folder = root / f"{kind}-export"
    drafts = max(1, n // 50)  # about 2% drafts / unpublished, as real exports have
    items = pieces(n, kind)
    if kind == "medium":
        build.medium_export(folder, items[drafts:], drafts=items[:drafts], responses=[])
    elif kind == "substack":
        build.substack_export(folder, items[drafts:], unpublished=items[:drafts])
    else:
        build.linkedin_export(folder, shares=items, articles=[], drafts=[])
    archive = Path(shutil.make_archive(str(folder), "zip", folder))
    shutil.rmtree(folder)
    return archive


def _machine() -> dict:
    try:
        sys.path.insert(0, str(ROOT / "bench"))
        from common import machine

        return machine(torch=False)
    except ImportError:  # bench/common.py absent: the CPU flags from lscpu
        import os
        import platform
        import subprocess

        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines()) if v}
        return {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                "cpu_model": info.get("Model name", ""), "cpu_flags": info.get("Flags", ""),
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


@click.command()
@click.option("--items", default=1000, show_default=True, help="Items per export.")
@click.option("--formats", default="medium,substack,linkedin", show_default=True)
@click.option("--output", default="bench/results/archive_import.json", type=click.Path(path_type=Path))
def main(items: int, formats: str, output: Path) -> None:
    from llm_engineering.application.sources.report import SourceSpec
    from llm_engineering.infrastructure.local_services import find_free_port
    from llm_engineering.infrastructure.mongo.client import close_clients
    from llm_engineering.infrastructure.mongo.server import embedded_server
    from llm_engineering.settings import Settings
    from llm_engineering.wiring import get_container

    facts = _machine()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", mongodb_uri=f"mongodb://127.0.0.1:{find_free_port()}")
        server = embedded_server(settings)
        try:
            importer = get_container(settings).archive_importer()
            importer.warehouse.ensure_indexes()
            for kind in formats.split(","):
                archive = make_export(kind, items, Path(tmp))
                spec = SourceSpec(path=str(archive), site_url=c.TOMASZ_SITE)
                runs = []
                for _ in range(2):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    report = importer.import_sources([spec], c.INES, show_progress=False)
                    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                    runs.append({"seconds": round(seconds, 2), "items_per_s": round(items / seconds, 1),
                                 "importer_cpu_s": round(cpu, 2), "items_per_cpu_s": round(items / cpu, 1),
                                 "counts": report.counts_by_format()[kind], "added": report.added()})  # fmt: skip
                results[kind] = {"items": items, "zip_bytes": archive.stat().st_size, "first": runs[0],
                                 "second": runs[1]}  # fmt: skip
                click.echo(f"{kind}: {json.dumps(results[kind])}")
            importer.close()
        finally:
            close_clients()
            if server is not None:
                server.stop()
    result = {
        "benchmark": "archive_import",
        "what": "a zipped export of N items per format imported into a fresh embedded warehouse (nx-27017 over "
        "TCP), then imported again; items/s over the whole import (read + check + upsert); items_per_cpu_s over the "
        "importer's CPU time",
        "items_per_export": items,
        "formats": results,
        "second_import_added": sum(r["second"]["added"] for r in results.values()),
        "machine": facts,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
