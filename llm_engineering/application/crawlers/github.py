"""Git repositories (GitHub, any git URL, a local path or file:// URL): shallow clone, then every text file.

The clone goes into a temporary folder through `git -C`-style absolute paths; the process's working
directory is never changed (other threads and the caller rely on it). File text is kept byte-for-byte.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from loguru import logger

from llm_engineering.application.crawlers.base import Crawler, CrawlerConfig
from llm_engineering.domain.documents import RepositoryDocument, UserDocument
from llm_engineering.domain.errors import CrawlError
from llm_engineering.domain.types import Platform

# Dependencies, build output, caches and tool state: not the author's writing.
SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "node_modules", "bower_components", "vendor", "third_party", "dist", "build",
        "target", "out", ".next", ".nuxt", ".venv", "venv", "site-packages", "__pycache__", ".mypy_cache",
        ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".eggs", ".gradle", ".idea", ".vscode", "Pods",
        "coverage", "htmlcov",
    }
)  # fmt: skip
# Generated dependency pins: long, machine-written, worthless as text.
LOCK_FILES = frozenset(
    {
        "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "poetry.lock",
        "pipfile.lock", "uv.lock", "pdm.lock", "cargo.lock", "composer.lock", "gemfile.lock", "go.sum",
        "podfile.lock", "mix.lock", "flake.lock", "packages.lock.json",
    }
)  # fmt: skip
BINARY_SUFFIXES = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".tif", ".tiff", ".psd", ".pdf", ".zip",
        ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".jar", ".war", ".whl", ".egg", ".so", ".dll",
        ".dylib", ".exe", ".bin", ".o", ".a", ".class", ".pyc", ".pyo", ".pyd", ".mp3", ".mp4", ".wav", ".ogg",
        ".flac", ".avi", ".mov", ".mkv", ".webm", ".ttf", ".otf", ".woff", ".woff2", ".eot", ".pkl", ".pickle",
        ".npy", ".npz", ".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".h5", ".hdf5", ".parquet", ".db",
        ".sqlite", ".sqlite3", ".gguf", ".xlsx", ".xls", ".docx", ".pptx",
    }
)  # fmt: skip
GENERATED_SUFFIXES = (".min.js", ".min.css", ".js.map", ".css.map")
# GitHub's own rules for account and repository names.
GITHUB_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
GITHUB_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
# A NUL byte in the first block means binary whatever the name says (same rule as git's).
SNIFF_BYTES = 8000


def is_local_repository_link(link: str) -> bool:
    """file:// URLs and filesystem paths (absolute, ./ ../ ~/, or an existing directory)."""
    link = link.strip()
    if link.lower().startswith("file://"):
        return True
    if "://" in link or link.startswith("git@"):
        return False
    return link.startswith(("/", "./", "../", "~")) or Path(link).is_dir()


def clone_source(link: str) -> tuple[str, str]:
    """(what to pass to `git clone`, the repository name) for a GitHub/git URL, file:// URL or local path."""
    link = link.strip()
    if is_local_repository_link(link):
        path = Path(unquote(urlsplit(link).path)) if link.lower().startswith("file://") else Path(link)
        path = path.expanduser().resolve()
        # file:// so that --depth is honoured (git ignores it for plain local paths).
        return path.as_uri(), path.name
    if link.startswith("git@"):  # git@github.com:owner/repo.git
        name = link.rsplit(":", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
        return link, name.removesuffix(".git")
    parts = urlsplit(link)
    segments = [s for s in parts.path.split("/") if s]
    if (parts.hostname or "").lower() in ("github.com", "www.github.com"):
        # https://github.com/owner/repo[/tree/branch/...] -> the repository itself
        if len(segments) < 2:
            raise ValueError("a GitHub repository link looks like https://github.com/OWNER/REPO")
        owner, repo = segments[0], segments[1].removesuffix(".git")
        if not GITHUB_OWNER.fullmatch(owner) or not GITHUB_REPO.fullmatch(repo) or repo in (".", ".."):
            raise ValueError(
                "a GitHub repository link looks like https://github.com/OWNER/REPO (letters, digits, '-', '_', '.'; "
                "no '..' path segments)"
            )
        return f"https://github.com/{owner}/{repo}.git", repo
    if not segments:
        raise ValueError("the link names no repository")
    return link, checkout_name(segments[-1].removesuffix(".git"))


def checkout_name(name: str) -> str:
    """A folder name for the clone that stays inside the temporary folder ('..', '.', separators: 'repo')."""
    name = name.strip()
    if name in ("", ".", "..") or "/" in name or "\\" in name or name.startswith("-"):
        return "repo"
    return name


def check_local_repository(link: str, source: str) -> None:
    """A local path (or file:// URL) must be a git repository folder: say which of those it is not."""
    path = Path(unquote(urlsplit(source).path))
    if not path.exists():
        raise CrawlError(link, f"local repository {path} does not exist")
    if not path.is_dir():
        raise CrawlError(link, f"local repository {path} is a file, not a git repository folder")
    if not ((path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())):
        raise CrawlError(link, f"local folder {path} is not a git repository (no .git)")


def skip_reason(relative: PurePosixPath, size: int, max_bytes: int) -> str | None:
    """Why a file is left out by rule (before reading it), or None."""
    name = relative.name.lower()
    if name in LOCK_FILES:
        return "lock file"
    if relative.suffix.lower() in BINARY_SUFFIXES:
        return "binary"
    if name.endswith(GENERATED_SUFFIXES):
        return "generated"
    if size > max_bytes:
        return "oversized"
    return None


class GithubCrawler(Crawler):
    platform = Platform.GITHUB

    def __init__(self, config: CrawlerConfig | None = None, clone_timeout_s: float | None = None) -> None:
        self.config = config or CrawlerConfig()
        # A clone moves far more data than a page: give it a generous, still bounded, time.
        self.clone_timeout_s = clone_timeout_s or max(120.0, 6 * self.config.timeout_s)

    def crawl(self, link: str, author: UserDocument) -> RepositoryDocument:
        try:
            source, name = clone_source(link)
        except ValueError as exc:
            raise CrawlError(link, str(exc)) from exc
        self._check_local_root(link, source)
        if source.startswith("file://"):
            check_local_repository(link, source)
        workdir = Path(tempfile.mkdtemp(prefix="llm-twin-repo-"))
        try:
            checkout = workdir / checkout_name(name or "repo")
            if checkout.resolve().parent != workdir.resolve():  # never clone outside the temporary folder
                raise CrawlError(link, f"the repository name {name!r} is not a plain folder name")
            self._clone(link, source, checkout)
            files = self.read_files(checkout)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if not files:
            raise CrawlError(link, "no text files found in the repository (all binary, vendored, locks or oversized)")
        return self.document(RepositoryDocument, link, author, files, name=name)

    def _check_local_root(self, link: str, source: str) -> None:
        """A local repository (a documented feature of this crawler only) must lie under an allowed root, when
        CRAWLER_LOCAL_REPOSITORY_ROOTS names any."""
        if not source.startswith("file://") or not self.config.local_repository_roots:
            return
        path = Path(unquote(urlsplit(source).path)).resolve()
        roots = [Path(root).expanduser().resolve() for root in self.config.local_repository_roots]
        if not any(path == root or root in path.parents for root in roots):
            raise CrawlError(
                link,
                f"local repository {path} is outside CRAWLER_LOCAL_REPOSITORY_ROOTS ({', '.join(map(str, roots))})",
            )

    def _clone(self, link: str, source: str, destination: Path) -> None:
        git = shutil.which("git")
        if git is None:
            raise CrawlError(link, "git is not installed; install it with: apt-get install -y git")
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",  # a private or missing repo must fail, not wait for a password
            "GIT_LFS_SKIP_SMUDGE": "1",  # LFS objects are binaries we skip anyway
            # Only the transport the link names: never `ext::` (runs commands) or a local path behind a URL.
            "GIT_ALLOW_PROTOCOL": "file" if source.startswith("file://") else "https:ssh:git",
        }
        command = [git, "clone", "--depth", "1", "--single-branch", "--no-tags", "--quiet", "--", source]
        command.append(str(destination))
        try:
            result = subprocess.run(
                command,
                cwd=destination.parent,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.clone_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CrawlError(link, f"git clone did not finish within {self.clone_timeout_s:g}s") from exc
        if result.returncode != 0:
            lines = [line.strip() for line in (result.stderr or "").splitlines() if line.strip()]
            # git's "fatal: ..." line says what went wrong; the lines after it are generic advice.
            fatal = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
            detail = fatal[0] if fatal else lines[-1] if lines else f"exit status {result.returncode}"
            raise CrawlError(link, f"git clone failed: {detail}")

    def read_files(self, root: Path) -> dict[str, str]:
        """{posix relative path: text} for every kept file under `root`, in a stable order."""
        max_bytes = self.config.github_max_file_bytes
        files: dict[str, str] = {}
        skipped: dict[str, int] = {}
        for directory, dirnames, filenames in os.walk(root):
            kept_dirs = []
            for d in dirnames:
                if d in SKIP_DIRS or d.endswith(".egg-info") or Path(directory, d).is_symlink():
                    skipped["vendored/tool dir"] = skipped.get("vendored/tool dir", 0) + 1
                else:
                    kept_dirs.append(d)
            dirnames[:] = sorted(kept_dirs)
            for filename in sorted(filenames):
                path = Path(directory, filename)
                relative = PurePosixPath(path.relative_to(root).as_posix())
                reason = self._file_skip_reason(path, relative, max_bytes)
                if reason is None:
                    data = path.read_bytes()
                    reason = "binary" if b"\0" in data[:SNIFF_BYTES] else None
                    if reason is None:
                        try:
                            files[str(relative)] = data.decode("utf-8")
                        except UnicodeDecodeError:
                            reason = "not UTF-8"
                if reason:
                    skipped[reason] = skipped.get(reason, 0) + 1
        if skipped:
            logger.debug(f"{root.name}: kept {len(files)} files, skipped {skipped}")
        return files

    @staticmethod
    def _file_skip_reason(path: Path, relative: PurePosixPath, max_bytes: int) -> str | None:
        # Symlinks could point anywhere on this machine (e.g. ~/.ssh): never follow them.
        if path.is_symlink() or not path.is_file():
            return "symlink or special file"
        return skip_reason(relative, path.stat().st_size, max_bytes)
