"""Generation defaults of a model version: the decoding that keeps a small model from looping (pure data).

They are stored with each registered model version (`manifest.json`, key `generation`) and read back by serving
(`/rag`, the OpenAI-compatible route), dataset generation's rejected answers and the evaluation, so every path
decodes the same way. A field an engine does not have is simply not sent to it: vLLM's OpenAI server takes
`repetition_penalty` (in `extra_body`) and `frequency_penalty`; transformers `generate()` also takes
`no_repeat_ngram_size`. What decoding cannot prevent, the serving-side repetition guard ends
(`application/rag/repetition.py`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llm_engineering.domain.prompts import RAG_ANSWER_STOP

# Questions that want a fact, a name or a yes/no: a short answer. Anything else (why, how, explain): a longer one.
_SHORT_QUESTION = re.compile(
    r"^\s*(what\s+(is|are|was|were|does|do)\b|who\b|when\b|where\b|which\b|how\s+(many|much|long|big|old)\b|"
    r"(is|are|does|do|did|can|could|should|was|were|has|have)\s)",
    re.IGNORECASE,
)


class GenerationDefaults(BaseModel):
    """How a model version decodes its answers (every key optional in a manifest; these are the defaults)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # Off by default: vLLM applies it to the prompt's tokens too, so a RAG answer is pushed away from the words of
    # its own context (measured: bench/results/answer_decoding_rag_blogs_rp115.json — fact recall 0.39 -> 0.13).
    repetition_penalty: float = Field(
        default=1.0,
        ge=1.0,
        le=2.0,
        description="vLLM/transformers: divides the logits of tokens already present in the prompt AND the answer",
    )
    frequency_penalty: float = Field(
        default=0.3,
        ge=0.0,
        le=2.0,
        description="OpenAI-style: subtracts penalty x count of each token the answer "
        "already holds (answer tokens only: the context's words stay free to quote)",
    )
    presence_penalty: float = Field(default=0.0, ge=0.0, le=2.0)
    no_repeat_ngram_size: int = Field(
        default=4, ge=0, description="transformers generate(): no 4-gram twice (0: off; vLLM has no such option)"
    )
    temperature: float = Field(default=0.0, ge=0.0, description="greedy by default: reproducible answers")
    stop: list[str] = Field(default_factory=lambda: list(RAG_ANSWER_STOP), description="RAG answer stop sequences")
    short_answer_tokens: int = Field(default=96, ge=8, description="answer length for a fact/who/which question")
    long_answer_tokens: int = Field(default=200, ge=8, description="answer length for a why/how/explain question")

    def max_tokens_for(self, question: str, cap: int | None = None) -> int:
        """A length suited to the question (short for a fact, longer for an explanation), at most `cap`."""
        wanted = self.short_answer_tokens if _SHORT_QUESTION.match(question or "") else self.long_answer_tokens
        return min(wanted, cap) if cap else wanted

    def sampling_options(self) -> dict[str, Any]:
        """The penalties as `GenerationOptions` keys (the LLM client maps each to what its engine accepts)."""
        return {
            "repetition_penalty": self.repetition_penalty,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }


# Decoding as it was before generation defaults existed (no penalties): what a manifest without a `generation`
# key gets only when asked for explicitly, e.g. to measure what the defaults change.
PLAIN_DECODING = GenerationDefaults(
    repetition_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, no_repeat_ngram_size=0
)


def generation_defaults(manifest: dict[str, Any] | None) -> GenerationDefaults:
    """A model version's defaults from its manifest (`generation` key); the defaults above when it has none."""
    data = (manifest or {}).get("generation")
    return GenerationDefaults.model_validate(data) if isinstance(data, dict) else GenerationDefaults()
