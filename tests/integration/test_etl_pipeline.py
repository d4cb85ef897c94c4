"""The digital_data_etl ZenML pipeline, run by its CLI on the default local stack against real sources:
a local git repository (GitHub crawler), plus links that must fail (nothing listening, unsupported scheme)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from llm_engineering.domain.types import DataCategory

PROJECT_ROOT = Path(__file__).parents[2]


def _make_git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "app.py").write_text("def greet(name):\n    if name:\n        return f'hi {name}'\n    return 'hi'\n")
    (path / "README.md").write_text("# demo\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env)
    return path


def _run_etl(config: Path, settings) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONGODB_EMBEDDED": "false",
        "CRAWLER_DOMAIN_DELAY_S": "0",
        "CRAWLER_MAX_RETRIES": "0",
        "CRAWLER_TIMEOUT_S": "5",
    }
    return subprocess.run(
        [sys.executable, "-m", "tools.etl", "--config", str(config)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _run_metadata(run_name: str) -> dict:
    from zenml.client import Client

    step = Client().get_pipeline_run(run_name).steps["crawl_links"]
    return dict(step.run_metadata)


def test_etl_pipeline_stores_good_links_reports_bad_ones_and_is_idempotent(settings, warehouse, tmp_path):
    repo = _make_git_repo(tmp_path / "greeter")
    config = tmp_path / "etl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "parameters": {
                    "user_full_name": "Grace Hopper",
                    "links": [
                        str(repo),
                        str(repo),  # listed twice: crawled once
                        "http://127.0.0.1:9/unreachable-article",  # nothing listens on the discard port
                        "ftp://example.org/file",
                    ],
                }
            }
        )
    )

    first = _run_etl(config, settings)
    assert first.returncode == 1, first.stdout + first.stderr  # partial failure → non-zero exit
    assert "2 of 3 link(s) failed" in first.stderr
    assert "FAILED http://127.0.0.1:9/unreachable-article" in first.stdout
    assert "FAILED ftp://example.org/file: unsupported link scheme" in first.stdout
    assert re.search(r"github\s+1\s+0\s+0\s+0", first.stdout), first.stdout  # inserted 1

    repos = warehouse.find_documents(DataCategory.REPOSITORIES)
    assert len(repos) == 1
    assert repos[0].content["app.py"].startswith("def greet(name):\n    if name:\n")
    assert repos[0].author_full_name == "Grace Hopper"
    assert warehouse.find_user("Grace Hopper") is not None

    run_name = re.search(r"ETL run (\S+) for", first.stdout).group(1)
    metadata = _run_metadata(run_name)
    assert metadata["counts_by_status"] == {"inserted": 1, "failed": 2}
    assert {f["link"] for f in metadata["failures"]} == {"http://127.0.0.1:9/unreachable-article",
                                                          "ftp://example.org/file"}  # fmt: skip

    # The same config again: nothing new, the repository is unchanged, still one user.
    second = _run_etl(config, settings)
    assert second.returncode == 1
    assert re.search(r"github\s+0\s+0\s+1\s+0", second.stdout), second.stdout  # unchanged 1
    assert warehouse.count(DataCategory.REPOSITORIES) == 1
    assert warehouse.count(DataCategory.USERS) == 1

    # A changed repository is updated in place (same document id).
    (repo / "app.py").write_text("def greet(name):\n    return name\n")
    subprocess.run(["git", "commit", "-qam", "change"], cwd=repo, check=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})  # fmt: skip
    config.write_text(yaml.safe_dump({"parameters": {"user_full_name": "Grace Hopper", "links": [str(repo)]}}))
    third = _run_etl(config, settings)
    assert third.returncode == 0, third.stdout + third.stderr
    assert re.search(r"github\s+0\s+1\s+0\s+0", third.stdout), third.stdout  # updated 1
    updated = warehouse.find_documents(DataCategory.REPOSITORIES)
    assert len(updated) == 1 and updated[0].id == repos[0].id
    assert updated[0].content["app.py"] == "def greet(name):\n    return name\n"


def test_etl_config_errors_name_the_file_and_the_key(settings, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("parameters:\n  links: []\n")
    result = _run_etl(config, settings)
    assert result.returncode != 0
    assert str(config) in result.stderr
    assert "parameters.user_full_name" in result.stderr and "parameters.links" in result.stderr
    assert "Traceback" not in result.stderr

    missing = _run_etl(tmp_path / "nope.yaml", settings)
    assert missing.returncode != 0 and "config file not found" in missing.stderr
