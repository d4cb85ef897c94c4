"""Judge-free voice metrics from answer log-probabilities (`SequenceScorer`), and the stylometric distance.

- **Held-out perplexity**: exp of the mean negative log-likelihood per token of the author's test answers (instruct
  test split; the prompt exactly as training rendered it; only the answer tokens count). Token-weighted over the
  whole split, as the trainer's eval loss is. Lower = the model finds the author's own writing less surprising.
- **DPO implicit-reward accuracy** on the preference test split: DPO's reward of an answer is
  beta * (log pi(answer) - log pi_ref(answer)); a pair is "won" when reward(chosen) > reward(rejected), i.e.
  when, relative to the reference model, the model moved probability towards the author's text and away from the
  base model's. The reference is the base model (so the base itself has no reward: n/a).
- **Preference accuracy** (no reference): the share of pairs where log p(author's text) > log p(base's text),
  for every model, the base included (the base typically prefers its own text).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from llm_engineering.application.evaluation.results import VoiceResult
from llm_engineering.application.evaluation.stylometry import compare_styles
from llm_engineering.application.ports import SequenceScorer
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.prompts import TWIN_SYSTEM_PROMPT_NO_CONTEXT

Message = dict[str, str]


def perplexity(logprob_sums: Sequence[float], token_counts: Sequence[int]) -> tuple[float | None, float | None]:
    """(perplexity, NLL per token) over all tokens together; (None, None) without tokens."""
    tokens = sum(token_counts)
    if tokens <= 0:
        return None, None
    nll = -sum(logprob_sums) / tokens
    return math.exp(min(nll, 50.0)), nll


def dpo_rewards(
    policy_chosen: float, policy_rejected: float, ref_chosen: float, ref_rejected: float, beta: float
) -> tuple[float, float]:
    """(reward of chosen, reward of rejected) as DPO defines them: beta * (log pi - log pi_ref)."""
    return beta * (policy_chosen - ref_chosen), beta * (policy_rejected - ref_rejected)


def reward_accuracy(
    policy: Sequence[tuple[float, float]], reference: Sequence[tuple[float, float]], beta: float
) -> tuple[float | None, float | None]:
    """(share of pairs whose chosen reward beats the rejected one, mean margin) from (chosen, rejected) log-probs
    of the policy and of the reference. Ties (margin exactly 0, e.g. policy == reference) are not wins."""
    if not policy:
        return None, None
    if len(policy) != len(reference):
        raise ValueError("policy and reference scored different numbers of pairs")
    margins = []
    for (pc, pr), (rc, rr) in zip(policy, reference, strict=True):
        chosen, rejected = dpo_rewards(pc, pr, rc, rr, beta)
        margins.append(chosen - rejected)
    return sum(1 for m in margins if m > 0) / len(margins), sum(margins) / len(margins)


def instruct_example(row: dict[str, Any], where: str) -> tuple[list[Message], str]:
    """(prompt messages, the author's answer) of an instruct row: `messages` minus the last turn, else built
    from instruction + answer in the no-context shape training uses."""
    messages = row.get("messages")
    if isinstance(messages, list) and messages and messages[-1].get("role") == "assistant":
        prompt = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages[:-1]]
        return prompt, str(messages[-1]["content"])
    instruction, answer = row.get("instruction"), row.get("answer")
    if isinstance(instruction, str) and isinstance(answer, str) and answer.strip():
        prompt = [
            {"role": "system", "content": TWIN_SYSTEM_PROMPT_NO_CONTEXT},
            {"role": "user", "content": instruction.strip()},
        ]
        return prompt, answer.strip()
    raise ConfigurationError(f"{where}: needs `messages` ending with the assistant's answer, or instruction + answer")


def preference_example(row: dict[str, Any], where: str) -> tuple[list[Message], str, str]:
    prompt, chosen, rejected = row.get("prompt"), row.get("chosen"), row.get("rejected")
    if isinstance(prompt, str):
        prompt = [{"role": "system", "content": TWIN_SYSTEM_PROMPT_NO_CONTEXT}, {"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise ConfigurationError(f"{where}: `prompt` must be chat messages (or a question)")

    def text(value: Any) -> str:
        if isinstance(value, list) and value and isinstance(value[-1], dict):
            value = value[-1].get("content")
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{where}: `chosen` and `rejected` must be non-empty texts")
        return value.strip()

    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    return messages, text(chosen), text(rejected)


def score_voice(
    name: str,
    scorer: SequenceScorer,
    instruct_rows: Sequence[dict[str, Any]],
    preference_rows: Sequence[dict[str, Any]],
    reference_pairs: Sequence[tuple[float, float]] | None,
    beta: float,
    focus_documents: Sequence[str] = (),
) -> tuple[VoiceResult, list[tuple[float, float]]]:
    """Perplexity and preference metrics of one model. Returns the result and the model's (chosen, rejected)
    log-probs per pair (the reference model's are what later models are compared with). With `focus_documents`
    (a refresh's new writing), the perplexity of their answers alone is `voice.new_writing_perplexity`."""
    examples = [instruct_example(row, f"instruct test row {i + 1}") for i, row in enumerate(instruct_rows)]
    scored = scorer.answer_logprobs_many(examples) if examples else []
    ppl, nll = perplexity([s for s, _ in scored], [n for _, n in scored])
    focus = set(focus_documents)
    focused = [s for row, s in zip(instruct_rows, scored, strict=True) if row.get("document_id") in focus]
    new_writing_ppl, _ = perplexity([s for s, _ in focused], [n for _, n in focused])
    rows: list[dict[str, Any]] = []
    for i, ((_, answer), (total, count)) in enumerate(zip(examples, scored, strict=True)):
        rows.append(
            {
                "kind": "perplexity",
                "id": f"instruct-{i + 1}",
                "question": _user_text(examples[i][0]),
                "answer_tokens": count,
                "logprob": round(total, 4),
                "perplexity": round(math.exp(min(-total / count, 50.0)), 4) if count else None,
                "reference": answer[:300],
            }
        )
    pairs = [preference_example(row, f"preference test row {i + 1}") for i, row in enumerate(preference_rows)]
    flat = [(p, c) for p, c, _ in pairs] + [(p, r) for p, _, r in pairs]
    pair_scores = scorer.answer_logprobs_many(flat) if flat else []
    n = len(pairs)
    policy = [(pair_scores[i][0], pair_scores[n + i][0]) for i in range(n)]
    preference = sum(1 for c, r in policy if c > r) / n if n else None
    accuracy = margin = None
    if reference_pairs is not None and reference_pairs is not policy:
        accuracy, margin = reward_accuracy(policy, reference_pairs, beta)
    for i, (prompt, _, _) in enumerate(pairs):
        row = {
            "kind": "preference",
            "id": f"pair-{i + 1}",
            "question": _user_text(prompt),
            "logprob_chosen": round(policy[i][0], 4),
            "logprob_rejected": round(policy[i][1], 4),
            "prefers_chosen": policy[i][0] > policy[i][1],
        }
        if reference_pairs is not None and accuracy is not None:
            chosen, rejected = dpo_rewards(*policy[i], *reference_pairs[i], beta)
            row["reward_margin"] = round(chosen - rejected, 4)
        rows.append(row)
    metrics = {
        "voice.perplexity": ppl,
        "voice.nll_per_token": nll,
        "voice.new_writing_perplexity": new_writing_ppl,
        "voice.new_writing_answers": float(len(focused)) if focus else None,
        "voice.answer_tokens": float(sum(c for _, c in scored)),
        "voice.preference_accuracy": preference,
        "voice.dpo_reward_accuracy": accuracy,
        "voice.dpo_reward_margin": margin,
    }
    return VoiceResult(model=name, metrics=metrics, rows=rows), policy


def style_metrics(generated: Sequence[str], reference: Sequence[str]) -> dict[str, float | None]:
    """`style.*` metrics of generated answers against the author's answers (None when nothing was generated)."""
    if not [g for g in generated if g.strip()] or not reference:
        return {"style.distance": None}
    return {f"style.{k}": v for k, v in compare_styles(generated, reference).items()}


def _user_text(messages: Sequence[Message]) -> str:
    """The question of a prompt: the last user turn, without a RAG context block."""
    for message in reversed(messages):
        if message["role"] == "user":
            text = message["content"]
            marker = "\n\nQuestion: "
            return text.rsplit(marker, 1)[1] if marker in text else text
    return ""
