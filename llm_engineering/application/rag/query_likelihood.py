"""Reranking with a causal language model: no trained reranker needed (`RERANKER_KIND=query-likelihood`).

Each passage is scored by how likely the LM finds the *question* after reading it — the mean log-probability of
the question's tokens given "Passage: … Write a question that this passage answers." (UPR: Sachan et al. 2022,
"Improving Passage Retrieval with Zero-Shot Question Generation"). A passage that answers the question makes its
words predictable even when the question paraphrases it, which is where the bi-encoder and BM25 disagree; the
project's packaged SmolLM2-135M-Instruct is enough to move paraphrased questions up (docs/features.md). The
retriever fuses this ranking with the hybrid one (RRF) rather than replacing it: alone, the small LM ranks worse
than hybrid.

The scorer is the `SequenceScorer` port (one forward pass per passage, batched), the same one the evaluation uses
for perplexity.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_engineering.application.ports import SequenceScorer
from llm_engineering.domain.prompts import neutralize_control_tokens, query_likelihood_messages


class QueryLikelihoodReranker:
    """Implements `ports.Reranker`: score = mean log P(query tokens | passage prompt), in nats per token."""

    def __init__(self, scorer: SequenceScorer, model_id: str | None = None) -> None:
        self.scorer = scorer
        self.model_id = f"query-likelihood:{model_id or scorer.model_id}"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages or not query.strip():
            return [0.0] * len(passages)
        question = neutralize_control_tokens(query.strip())
        scored = self.scorer.answer_logprobs_many([(query_likelihood_messages(p), question) for p in passages])
        # Mean, not sum: the question is the same for every passage, but truncation may shorten one.
        return [total / count if count else float("-inf") for total, count in scored]
