"""LLM-as-judge with JSON-schema-constrained verdicts, retried once, and its reliability measured.

Two judgements, as in the book's design and then some:

- **Absolute** (the book's): the instruction and the model's answer; the judge scores accuracy and style from
  1 (poor) to 3 (excellent). The schema's enums make any other value impossible for a server that honours
  `json_schema` (vLLM does); anything else is still validated here.
- **Pairwise, position-swapped**: the model's answer and the author's answer to the same instruction, asked
  twice, once as (A = model, B = author) and once swapped. A verdict that names the same *answer* both times is
  consistent; the agreement rate is the share of consistent pairs. A judge that just prefers position A (small
  models do) agrees ~0 % of the time, which is why the rate is printed next to the scores. Win rate vs the
  author = consistent verdicts for the model / consistent verdicts (0.5 = indistinguishable from the author).

Invalid output (unparsable, or outside the schema) is retried once, then counted as missing — never a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from loguru import logger

from llm_engineering.application.evaluation.results import JudgeResult, mean
from llm_engineering.application.ports import LLM
from llm_engineering.domain.errors import LLMTwinError

JUDGE_SYSTEM = "You are an expert judge of written answers. Reply with JSON only."
ABSOLUTE_TEMPLATE = (
    "Evaluate the answer to the instruction on two criteria.\n"
    "Accuracy: is the answer factually correct and does it fully answer the instruction?\n"
    "Style: is the tone right for a blog post or social media: accessible, clear, concrete, no overly formal or "
    "academic language?\n"
    "Scores: 1 = poor, 2 = good, 3 = excellent.\n\n"
    "Instruction: {instruction}\n\nAnswer: {answer}"
)
PAIRWISE_TEMPLATE = (
    "Two answers to the same instruction. Which one is better: more accurate, more concrete and written in a "
    "natural human voice? Reply A or B.\n\n"
    "Instruction: {instruction}\n\nAnswer A: {a}\n\nAnswer B: {b}"
)
SCORE_VALUES = (1, 2, 3)
WINNERS = ("A", "B")
MAX_ANSWER_CHARS = 2000


def absolute_schema() -> dict[str, Any]:
    return {
        "title": "judge_verdict",
        "type": "object",
        "properties": {
            "accuracy": {"type": "integer", "enum": list(SCORE_VALUES)},
            "style": {"type": "integer", "enum": list(SCORE_VALUES)},
        },
        "required": ["accuracy", "style"],
        "additionalProperties": False,
    }


def pairwise_schema() -> dict[str, Any]:
    return {
        "title": "judge_pairwise",
        "type": "object",
        "properties": {"winner": {"type": "string", "enum": list(WINNERS)}},
        "required": ["winner"],
        "additionalProperties": False,
    }


def absolute_messages(instruction: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {
            "role": "user",
            "content": ABSOLUTE_TEMPLATE.format(instruction=instruction.strip(), answer=_clip(answer)),
        },
    ]


def pairwise_messages(instruction: str, a: str, b: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": PAIRWISE_TEMPLATE.format(instruction=instruction.strip(), a=_clip(a), b=_clip(b))},
    ]


def _clip(text: str) -> str:
    text = text.strip() or "(empty)"
    return text if len(text) <= MAX_ANSWER_CHARS else text[:MAX_ANSWER_CHARS] + " ..."


def valid_absolute(parsed: Any) -> dict[str, int] | None:
    if not isinstance(parsed, dict):
        return None
    scores = {key: parsed.get(key) for key in ("accuracy", "style")}
    if all(isinstance(v, int) and not isinstance(v, bool) and v in SCORE_VALUES for v in scores.values()):
        return scores  # type: ignore[return-value]
    return None


def valid_pairwise(parsed: Any) -> str | None:
    if isinstance(parsed, dict) and isinstance(parsed.get("winner"), str):
        winner = parsed["winner"].strip().upper()
        return winner if winner in WINNERS else None
    return None


class Judge:
    """Asks one judge endpoint; counts calls, retries and missing verdicts."""

    def __init__(self, llm: LLM, max_tokens: int = 48, timeout_s: float = 60.0, concurrency: int = 4) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.calls = 0
        self.retries = 0
        self.missing = 0
        self.errors: list[str] = []
        self._semaphore = asyncio.Semaphore(concurrency)

    async def _ask(self, messages: list[dict[str, str]], schema: dict[str, Any], validate) -> Any | None:
        for attempt in range(2):
            self.calls += 1
            if attempt:
                self.retries += 1
            try:
                async with self._semaphore:
                    parsed, _raw = await self.llm.chat_json(
                        messages, schema, max_tokens=self.max_tokens, temperature=0.0, timeout_s=self.timeout_s
                    )
            except LLMTwinError as exc:  # unreachable, timeout, bad request: this verdict is missing
                self.errors.append(str(exc)[:200])
                parsed = None
            verdict = validate(parsed)
            if verdict is not None:
                return verdict
        self.missing += 1
        return None

    async def absolute(self, instruction: str, answer: str) -> dict[str, int] | None:
        return await self._ask(absolute_messages(instruction, answer), absolute_schema(), valid_absolute)

    async def pairwise(self, instruction: str, a: str, b: str) -> str | None:
        return await self._ask(pairwise_messages(instruction, a, b), pairwise_schema(), valid_pairwise)

    async def swapped(self, instruction: str, model_answer: str, author_answer: str) -> dict[str, Any]:
        """Both orders; the winner per order as 'model' / 'author' (None when missing), and consistency."""
        first, second = await asyncio.gather(
            self.pairwise(instruction, model_answer, author_answer),
            self.pairwise(instruction, author_answer, model_answer),
        )
        as_model_first = None if first is None else ("model" if first == "A" else "author")
        as_author_first = None if second is None else ("author" if second == "A" else "model")
        consistent = None
        if as_model_first is not None and as_author_first is not None:
            consistent = as_model_first == as_author_first
        return {
            "model_first": as_model_first,
            "author_first": as_author_first,
            "consistent": consistent,
            "winner": as_model_first if consistent else None,
            "position_a_both": first == "A" and second == "A",
        }


def pairwise_summary(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Agreement rate (consistent / both verdicts valid) and win rate of the model among consistent verdicts."""
    rated = [r for r in rows if r.get("consistent") is not None]
    consistent = [r for r in rated if r["consistent"]]
    return {
        "judge.agreement": len(consistent) / len(rated) if rated else None,
        "judge.win_rate_vs_author": (
            sum(1 for r in consistent if r["winner"] == "model") / len(consistent) if consistent else None
        ),
        "judge.position_a_bias": sum(1 for r in rated if r.get("position_a_both")) / len(rated) if rated else None,
    }


async def judge_model(
    judge: Judge, model: str, items: Sequence[tuple[str, str, str, str]], pairwise: bool = True
) -> JudgeResult:
    """Judge one model's answers. items: (id, instruction, model answer, author answer)."""
    calls_before, missing_before = judge.calls, judge.missing

    async def one(item: tuple[str, str, str, str]) -> dict[str, Any]:
        item_id, instruction, answer, author = item
        verdict, pair = await asyncio.gather(
            judge.absolute(instruction, answer),
            judge.swapped(instruction, answer, author) if pairwise else asyncio.sleep(0, result=None),
        )
        row: dict[str, Any] = {"id": item_id, "question": instruction, "accuracy": None, "style": None}
        if verdict:
            row.update(verdict)
        if pair:
            row.update(pair)
        return row

    rows = list(await asyncio.gather(*(one(item) for item in items)))
    calls = judge.calls - calls_before
    metrics: dict[str, float | None] = {
        "judge.accuracy": mean([r["accuracy"] for r in rows]),
        "judge.style": mean([r["style"] for r in rows]),
        "judge.judged": float(sum(1 for r in rows if r["accuracy"] is not None)),
        "judge.missing_rate": (judge.missing - missing_before) / max(1, len(rows) * (3 if pairwise else 1)),
    }
    if pairwise:
        metrics.update(pairwise_summary(rows))
    logger.info(f"judge: {model}: {len(rows)} answers, {calls} calls, metrics {metrics}")
    return JudgeResult(model=model, metrics=metrics, rows=rows)
