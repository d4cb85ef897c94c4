"""Token counting with the served model's tokenizer (or a clearly labelled approximation).

The context budget must be counted in the served model's tokens. For a local checkpoint (the prepared
SmolLM2 or any local path) we read its `tokenizer.json` with the `tokenizers` library (milliseconds, no
transformers import). For a hub id we try the HF cache; when no tokenizer can be had (offline, remote-only
model) we fall back to a conservative characters-per-token estimate and say so in the logs and responses.
"""

from __future__ import annotations

import math
from pathlib import Path

from loguru import logger

from llm_engineering.application.ports import PromptTokenCounter


class TokenizerCounter:
    """Exact counts with a `tokenizers.Tokenizer` (the served model's own vocabulary)."""

    def __init__(self, tokenizer, name: str) -> None:
        self._tokenizer = tokenizer
        self.name = name

    @classmethod
    def from_file(cls, path: Path) -> TokenizerCounter:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), name=f"tokenizer:{path.parent.name}")

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids) if text else 0

    def truncate(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) <= max_tokens:
            return text
        # Cut at the character offset of the last kept token: keeps the original text, no decode artefacts.
        end = encoding.offsets[max_tokens - 1][1]
        return text[:end]


class ApproxTokenCounter:
    """ceil(chars / chars_per_token). 3.0 over-counts English for BPE vocabularies (≈4 chars/token), so the
    context stays inside the window at the price of a little unused room."""

    def __init__(self, chars_per_token: float = 3.0) -> None:
        self.chars_per_token = chars_per_token
        self.name = f"approx:{chars_per_token:g}-chars-per-token"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max(0, int(max_tokens * self.chars_per_token))]


def load_token_counter(model: str) -> PromptTokenCounter:
    """The tokenizer of `model` (a resolved checkpoint folder or a hub id) when it can be found locally, else the
    approximation (logged once). The caller resolves the served model: this adapter knows no registry."""
    local = Path(model)
    if (local / "tokenizer.json").is_file():
        return TokenizerCounter.from_file(local / "tokenizer.json")
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(model, "tokenizer.json")
        return TokenizerCounter.from_file(Path(path))
    except Exception as exc:  # offline, gated, or a model without tokenizer.json: any of these means "approximate"
        logger.warning(f"No tokenizer.json for {model!r} ({type(exc).__name__}); token counts are approximate")
        return ApproxTokenCounter()
