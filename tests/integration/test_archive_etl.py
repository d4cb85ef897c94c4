"""`run-digital-data-etl` with `archives:` and `feeds:` next to `links:`: one ZenML run takes them all, prints the
per-format and per-platform summaries, and a second run adds nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llm_engineering.domain.types import DataCategory
from tests.fixtures.archives import build
from tests.fixtures.archives import corpus as c

PROJECT_ROOT = Path(__file__).parents[2]


def _run_etl(config: Path, settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(settings.data_dir), "MONGODB_URI": settings.mongodb_uri,
           "MONGODB_DATABASE": settings.mongodb_database, "MONGODB_EMBEDDED": "false", "CRAWLER_DOMAIN_DELAY_S": "0",
           "CRAWLER_MAX_RETRIES": "0", "CRAWLER_TIMEOUT_S": "5"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "tools.etl", "--config", str(config)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow  # two ZenML runs (~60 s each on 2 busy cores)
def test_etl_config_with_archives_feeds_and_links(settings, warehouse, fixture_server, tmp_path):
    substack = build.substack_export(tmp_path / "substack")
    atom = tmp_path / "wren.atom"
    atom.write_text(build.atom_feed([c.SCOUR, c.GUEST]))
    notes = tmp_path / "notes"  # a note of a page the config also crawls: left to the crawl
    notes.mkdir()
    (notes / "post.md").write_text(f"---\ncanonical_url: {fixture_server}/blog_post.html\n---\n# Draft\n\nWords.\n")
    config = tmp_path / "etl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "parameters": {
                    "user_full_name": c.TOMASZ,
                    "links": [f"{fixture_server}/blog_post.html"],
                    "archives": [{"path": str(substack), "site_url": c.TOMASZ_SITE}, str(notes)],
                    "feeds": [str(atom)],
                }
            }
        )
    )
    first = _run_etl(config, settings)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Archives and feeds for Tomasz Wren" in first.stdout and "substack" in first.stdout
    assert "written by Halina Brzeska" in first.stdout and "the crawl stores it" in first.stdout
    links = {d.link for d in warehouse.find_documents(DataCategory.ARTICLES)}
    assert links == {c.BRIDGES.link, c.CABLES.link, c.SCOUR.link, f"{fixture_server}/blog_post.html"}

    second = _run_etl(config, settings)
    assert second.returncode == 0, second.stdout + second.stderr
    assert warehouse.count(DataCategory.ARTICLES) == 4
    totals = re.findall(r"^total\s+(\d+)\s+(\d+)\s+(\d+)", second.stdout, re.MULTILINE)
    assert totals == [("0", "0", "3"), ("0", "0", "1")], second.stdout  # archives (then links): nothing added


@pytest.mark.slow  # a ZenML run
def test_etl_config_with_a_bad_archive_fails_before_writing(settings, warehouse, tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip at all")
    config = tmp_path / "etl.yaml"
    config.write_text(yaml.safe_dump({"parameters": {"user_full_name": c.TOMASZ, "archives": [str(broken)]}}))
    result = _run_etl(config, settings)
    assert result.returncode == 1
    assert "broken.zip: not a valid zip file" in result.stderr and "Nothing was imported" in result.stderr
    assert warehouse.count(DataCategory.ARTICLES) == 0
