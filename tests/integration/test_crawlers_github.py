"""Repository crawler on a real local git repository: shallow clone, byte-for-byte text, skip rules."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from llm_engineering.application.crawlers.base import CrawlerConfig
from llm_engineering.application.crawlers.github import GithubCrawler
from llm_engineering.domain.documents import RepositoryDocument, UserDocument
from llm_engineering.domain.errors import CrawlError
from llm_engineering.domain.types import Platform

PY_SOURCE = (
    b"class Greeter:\r\n"  # CRLF kept as is
    b"    def greet(self, name):\n"
    b"\tif not name:  # a tab, not spaces\n"
    b'            return "Hello"   \n'  # trailing spaces kept
    b"\n"
    b"        return name\n"
)
README = "# Greeter\n\nSays hello. Ünïcödé ✓\n".encode()


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "greeter"
    files = {
        "greeter/core.py": PY_SOURCE,
        "README.md": README,
        "greeter/__init__.py": b"",
        "assets/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "data/blob.txt": b"looks like text\x00but has a NUL byte",
        "latin1.txt": "caf\xe9".encode("latin-1"),
        "package-lock.json": b'{"lockfileVersion": 3}\n',
        "poetry.lock": b"[[package]]\n",
        "node_modules/left-pad/index.js": b"module.exports = 1;\n",
        "vendor/lib/util.go": b"package lib\n",
        "dist/bundle.js": b"var a=1;\n",
        "static/app.min.js": b"var a=1;\n",
        "big.txt": b"x" * 2048,
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "link_to_outside").symlink_to("/etc/hostname")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=Ada", "-c", "user.email=ada@example.org", "commit", "-q", "-m", "init")
    return root


@pytest.fixture
def crawler(settings) -> GithubCrawler:
    return GithubCrawler(CrawlerConfig(timeout_s=settings.crawler_timeout_s, github_max_file_bytes=1024))


def test_local_repository_text_files_byte_for_byte(crawler, repo, tmp_path):
    author = UserDocument.from_full_name("Ada Lovelace")
    cwd = os.getcwd()
    before = set(tmp_path.iterdir())
    doc = crawler.crawl(str(repo), author)
    assert os.getcwd() == cwd  # the clone never changes the process's working directory
    assert isinstance(doc, RepositoryDocument)
    assert doc.name == "greeter" and doc.platform == Platform.GITHUB.value and doc.link == str(repo)
    assert sorted(doc.content) == ["README.md", "greeter/__init__.py", "greeter/core.py"]
    assert doc.content["greeter/core.py"].encode("utf-8") == PY_SOURCE  # indentation, tabs, CRLF intact
    assert doc.content["README.md"].encode("utf-8") == README
    assert set(tmp_path.iterdir()) == before  # nothing left behind next to the repo


def test_file_url_works_the_same(crawler, repo):
    doc = crawler.crawl(repo.as_uri(), UserDocument.from_full_name("Ada Lovelace"))
    assert doc.name == "greeter"
    assert doc.content["greeter/core.py"].encode("utf-8") == PY_SOURCE
    assert "package-lock.json" not in doc.content and "node_modules/left-pad/index.js" not in doc.content


def test_latest_commit_is_read_and_temp_folder_removed(crawler, repo, tmp_path, monkeypatch):
    # A second commit: the clone reads the tip, and its temporary folder goes away afterwards.
    (repo / "greeter" / "core.py").write_bytes(PY_SOURCE + b"# v2\n")
    git(repo, "-c", "user.name=Ada", "-c", "user.email=ada@example.org", "commit", "-qam", "v2")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    doc = crawler.crawl(str(repo), UserDocument.from_full_name("Ada Lovelace"))
    assert doc.content["greeter/core.py"].endswith("# v2\n")
    assert list(scratch.iterdir()) == []


def test_missing_repository_is_a_crawl_error(crawler, tmp_path):
    link = (tmp_path / "nope").as_uri()
    with pytest.raises(CrawlError, match="does not exist") as info:
        crawler.crawl(link, UserDocument.from_full_name("Ada Lovelace"))
    assert info.value.link == link


def test_repository_with_only_skipped_files_is_a_crawl_error(crawler, tmp_path):
    root = tmp_path / "binaries"
    (root / "node_modules").mkdir(parents=True)
    (root / "node_modules" / "x.js").write_text("x")
    (root / "yarn.lock").write_text("x")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=Ada", "-c", "user.email=ada@example.org", "commit", "-q", "-m", "init")
    with pytest.raises(CrawlError, match="no text files found"):
        crawler.crawl(str(root), UserDocument.from_full_name("Ada Lovelace"))


def test_local_repositories_outside_the_allowed_roots_are_refused(repo, tmp_path):
    """Regression (#14): `file://` cloned any local git repository; with CRAWLER_LOCAL_REPOSITORY_ROOTS set,
    only repositories under those folders are read."""
    author = UserDocument.from_full_name("Ada Lovelace")
    elsewhere = GithubCrawler(CrawlerConfig(local_repository_roots=[str(tmp_path / "allowed")]))
    with pytest.raises(CrawlError, match="outside CRAWLER_LOCAL_REPOSITORY_ROOTS"):
        elsewhere.crawl(repo.as_uri(), author)
    inside = GithubCrawler(CrawlerConfig(local_repository_roots=[str(repo.parent)]))
    assert inside.crawl(str(repo), author).content
