"""The in-process (transformers) backend decodes like vLLM: penalties and n-gram blocking count the answer's own
tokens only, so a RAG answer may quote its context (the prompt) word for word."""

from __future__ import annotations

import torch

from llm_engineering.infrastructure.ml.decoding import AnswerNoRepeatNGram, AnswerPenalties, answer_only_processors

PROMPT = [5, 6, 7, 8, 9]  # holds the 4-gram 5 6 7 8


def _scores(vocab: int = 12) -> torch.Tensor:
    return torch.zeros(1, vocab)


def test_a_prompt_ngram_may_be_quoted_but_an_answer_ngram_not_twice():
    block = AnswerNoRepeatNGram(prompt_tokens=len(PROMPT), size=4)
    quoting = torch.tensor([PROMPT + [5, 6, 7]])  # the answer quotes the prompt: 8 must stay allowed
    assert torch.isfinite(block(quoting, _scores())).all()
    looping = torch.tensor([PROMPT + [1, 2, 3, 4, 1, 2, 3]])  # the answer's own 1 2 3 4 would come again
    scores = block(looping, _scores())
    assert scores[0, 4] == float("-inf") and torch.isfinite(scores[0, :4]).all() and torch.isfinite(scores[0, 5:]).all()


def test_penalties_count_answer_tokens_only():
    penalties = AnswerPenalties(prompt_tokens=len(PROMPT), frequency=0.5, presence=0.25)
    scores = penalties(torch.tensor([PROMPT + [3, 3, 5]]), _scores())
    assert scores[0, 3].item() == -1.25  # twice in the answer: 2 x 0.5 + 0.25
    assert scores[0, 5].item() == -0.75  # once in the answer (its prompt occurrence does not count)
    assert scores[0, 6].item() == 0.0  # prompt only: free
    assert torch.equal(penalties(torch.tensor([PROMPT]), _scores()), _scores())  # nothing generated yet


def test_no_processor_when_everything_is_off():
    assert answer_only_processors(5) == []
    kinds = [type(p) for p in answer_only_processors(5, frequency_penalty=0.3, no_repeat_ngram_size=4)]
    assert kinds == [AnswerPenalties, AnswerNoRepeatNGram]
