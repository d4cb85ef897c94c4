"""Answer-only decoding penalties for transformers `generate()`, so the in-process backend decodes like vLLM.

transformers has no OpenAI-style frequency/presence penalty, and its `no_repeat_ngram_size` looks at the whole
sequence, prompt included: for a RAG answer that bans every 4-gram of the retrieved context, so the model cannot
quote its source (measured in the main job's evaluation: names came out as "Elenia Marchetti", fact recall fell
to half the base's). vLLM's penalties count the answer's own tokens only; these processors do the same, and
block a repeated n-gram within the answer only. Why not a library: transformers' processors cannot skip the
prompt (`RepetitionPenaltyLogitsProcessor.prompt_ignore_length` is multiplicative, not OpenAI's subtraction).
"""

from __future__ import annotations

from typing import Any


def answer_only_processors(
    prompt_tokens: int, frequency_penalty: float = 0.0, presence_penalty: float = 0.0, no_repeat_ngram_size: int = 0
) -> list[Any]:
    """The logits processors for the given penalties (empty when all are off); `prompt_tokens` are never counted."""
    processors: list[Any] = []
    if frequency_penalty or presence_penalty:
        processors.append(AnswerPenalties(prompt_tokens, frequency_penalty, presence_penalty))
    if no_repeat_ngram_size and no_repeat_ngram_size > 0:
        processors.append(AnswerNoRepeatNGram(prompt_tokens, no_repeat_ngram_size))
    return processors


class AnswerPenalties:
    """logit -= frequency x count + presence x (count > 0), over the tokens generated so far (OpenAI semantics)."""

    def __init__(self, prompt_tokens: int, frequency: float, presence: float) -> None:
        self.prompt_tokens, self.frequency, self.presence = prompt_tokens, frequency, presence

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        answer = input_ids[:, self.prompt_tokens :]
        if answer.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, answer, torch.ones_like(answer, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


class AnswerNoRepeatNGram:
    """Bans the token that would complete an n-gram the answer already holds (the prompt's n-grams stay free)."""

    def __init__(self, prompt_tokens: int, size: int) -> None:
        self.prompt_tokens, self.size = prompt_tokens, size

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        n = self.size
        for row in range(input_ids.shape[0]):
            answer = input_ids[row, self.prompt_tokens :].tolist()
            if len(answer) < n:
                continue
            prefix = tuple(answer[len(answer) - n + 1 :])
            banned = [answer[i + n - 1] for i in range(len(answer) - n + 1) if tuple(answer[i : i + n - 1]) == prefix]
            if banned:
                scores[row, banned] = float("-inf")
        return scores
