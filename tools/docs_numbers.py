"""Rewrite the measured numbers that README.md and docs/*.md quote from bench/results/*.json (`poe docs-numbers`).

A quoted number is a marked span; the generator replaces only the text between the two comments:

    <!-- num:FILE:PATH[:FORMAT[:SCALE]] -->4.5<!-- /num -->

FILE    a file in bench/results/ (e.g. api_load.json)
PATH    keys and list indices joined by dots (e.g. latency.rag_c1.p50_s, runs.0.grounding.answers); a key may
        hold spaces, dots (the longest matching key wins: summary.base.voice.perplexity) and colons (then end
        the spec with a FORMAT, even an empty one: overall.second:dense.hit@1:.3f)
FORMAT  a Python format spec applied to the value: .1f, .3f, ',' (thousands), ',.0f', .0%, .10 (a string's
        first 10 characters, e.g. a date); empty: the value as JSON writes it
SCALE   /N or *N, applied before FORMAT (e.g. /60 turns seconds into minutes)

    python -m tools.docs_numbers           rewrite the files, list the ones that changed
    python -m tools.docs_numbers --check   change nothing; exit 1 if a file would change or a span is broken
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPAN = re.compile(r"<!-- num:(?P<spec>[^>]*?) -->(?P<value>.*?)<!-- /num -->")
FORMAT = re.compile(r"[<>=^]?[-+ ]?#?0?\d*[,_]?(\.\d+)?[bcdeEfFgGnosxX%]?")
SCALE = re.compile(r"[/*]\d+(\.\d+)?")


class SpanError(ValueError):
    """A marked span that names a missing file or key, or a format its value does not take."""


def doc_files(root: Path = ROOT) -> list[Path]:
    """The files that may quote results: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


class Results:
    """bench/results/*.json, each read once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, Any] = {}

    def load(self, name: str) -> Any:
        if name not in self._files:
            path = self.directory / name
            if "/" in name or path.suffix != ".json" or not path.is_file():
                raise SpanError(f"no results file bench/results/{name}")
            self._files[name] = json.loads(path.read_text(encoding="utf-8"))
        return self._files[name]

    def lookup(self, name: str, path: str) -> Any:
        value, keys, i = self.load(name), path.split("."), 0
        while i < len(keys):
            if isinstance(value, list) and keys[i].isdigit() and int(keys[i]) < len(value):
                value, i = value[int(keys[i])], i + 1
                continue
            # The longest dotted run that is a key wins: summary.base.voice.perplexity finds "voice.perplexity".
            found = [j for j in range(len(keys), i, -1) if isinstance(value, dict) and ".".join(keys[i:j]) in value]
            if not found:
                raise SpanError(f"{name} has no key {path!r} (stopped at {keys[i]!r})")
            value, i = value[".".join(keys[i : found[0]])], found[0]
        return value


def format_value(value: Any, fmt: str = "", scale: str = "") -> str:
    """One value as the docs print it."""
    if isinstance(value, (dict, list)):
        raise SpanError(f"the value is a {type(value).__name__}, not a number or a string")
    if scale:
        if not isinstance(value, (int, float)) or scale[0] not in "/*":
            raise SpanError(f"cannot scale {value!r} by {scale!r}")
        factor = float(scale[1:])
        value = value / factor if scale[0] == "/" else value * factor
    if not fmt:
        return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)
    try:
        return format(value, fmt)
    except (TypeError, ValueError) as exc:
        raise SpanError(f"cannot format {value!r} with {fmt!r}: {exc}") from exc


def render_spec(spec: str, results: Results) -> str:
    """The text a span's spec stands for, e.g. 'api_load.json:latency.rag_c1.p50_s:.1f' -> '4.5'."""
    name, _, rest = spec.partition(":")
    parts = rest.split(":")
    scale = parts.pop() if len(parts) > 2 and SCALE.fullmatch(parts[-1]) else ""
    fmt = parts.pop() if len(parts) > 1 and FORMAT.fullmatch(parts[-1]) else ""
    if not name or not parts[0]:
        raise SpanError(f"malformed span 'num:{spec}' (num:FILE:PATH[:FORMAT[:SCALE]])")
    return format_value(results.lookup(name, ":".join(parts)), fmt, scale)


def render(text: str, results: Results, where: str = "") -> str:
    """The text with every marked span's value regenerated from the results files."""

    def replace(match: re.Match[str]) -> str:
        try:
            value = render_spec(match["spec"], results)
        except SpanError as exc:
            line = text.count("\n", 0, match.start()) + 1
            raise SpanError(f"{where}:{line}: {exc}") from exc
        return f"<!-- num:{match['spec']} -->{value}<!-- /num -->"

    return SPAN.sub(replace, text)


def spans(text: str) -> list[str]:
    """The specs of every marked span in a text."""
    return [m["spec"] for m in SPAN.finditer(text)]


def stale_files(root: Path = ROOT, write: bool = False) -> list[Path]:
    """The doc files whose spans disagree with the results (rewritten when `write`)."""
    results = Results(root / "bench" / "results")
    changed = []
    for path in doc_files(root):
        text = path.read_text(encoding="utf-8")
        new = render(text, results, str(path.relative_to(root)))
        if new != text:
            changed.append(path)
            if write:
                path.write_text(new, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file would change")
    args = parser.parse_args(argv)
    try:
        changed = stale_files(write=not args.check)
    except SpanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'stale' if args.check else 'rewrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
