"""Deprecated compatibility names for scripts written against the old hand-rolled HTML renderer.

The crawlers now extract with trafilatura and write Markdown in `extraction.py` / `markdown.py`;
`html_to_text` renders ready-made content HTML the same way (`extraction.html_to_markdown`). New code
should import from `extraction` directly.
"""

from __future__ import annotations

from llm_engineering.application.crawlers.extraction import html_to_markdown as html_to_text
from llm_engineering.application.crawlers.extraction import parse_html

__all__ = ["html_to_text", "parse_html"]
