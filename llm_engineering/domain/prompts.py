"""Every prompt format in one place, shared by RAG inference, dataset generation and training, so the model is
served with exactly the template it was trained on. Pure: strings, small dataclasses and functions only.

Prompts are deliberately short: the default model (SmolLM2-135M-Instruct) follows short instructions far
better than long ones, and every token of instructions is a token less for context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Message = dict[str, str]

# --- The twin's chat template ----------------------------------------------------------------------------------
# ChatML, the format SmolLM2-Instruct was tuned with. Training sets `tokenizer.chat_template = TWIN_CHAT_TEMPLATE`
# and saves it with the model, so vLLM serves the fine-tuned model with this same template. Unlike the stock
# template it injects no default "You are SmolLM" system turn: the twin's system prompt is always explicit.
TWIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"


def render_chatml(messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """TWIN_CHAT_TEMPLATE in plain Python (for datasets and token counting without a tokenizer)."""
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


# Tokens the template adds per message ("<|im_start|>role\n ... <|im_end|>\n"), for budget arithmetic.
CHATML_TOKENS_PER_MESSAGE = 5
CHATML_GENERATION_PROMPT_TOKENS = 3

# --- The twin ----------------------------------------------------------------------------------------------------
TWIN_SYSTEM_PROMPT = (
    "You are the LLM Twin of the authors whose writing is given as context: answer in their voice, "
    "clearly and concretely. Use only the numbered context. Cite the passages you use as [1], [2]. "
    "If the context does not answer the question, say so."
)
# Without retrieved context (fine-tuning samples, or a query that retrieved nothing).
TWIN_SYSTEM_PROMPT_NO_CONTEXT = (
    "You are the LLM Twin of an author: answer in their voice, clearly and concretely. If you do not know, say so."
)
NO_CONTEXT_NOTE = "(no passage of the knowledge base matched this question)"


@dataclass(frozen=True)
class ContextPassage:
    """One numbered source given to the model; `number` is what the answer cites as [number]."""

    number: int
    title: str
    author: str
    link: str
    text: str


def format_passage(passage: ContextPassage) -> str:
    return f"[{passage.number}] {passage.title} ({passage.author})\n{passage.text.strip()}"


def format_context(passages: Iterable[ContextPassage]) -> str:
    blocks = [format_passage(p) for p in passages]
    return "\n\n".join(blocks) if blocks else NO_CONTEXT_NOTE


RAG_USER_TEMPLATE = "Context:\n{context}\n\nQuestion: {question}"
# A small model sometimes starts echoing the prompt's own structure after its answer: stop there.
RAG_ANSWER_STOP = ("\nQuestion:", "\nContext:")


def rag_answer_stop(passages: int) -> list[str]:
    """Stop sequences for a RAG answer over `passages` numbered passages. A line opening with a passage number
    past the last one can only be the start of an invented passage ("[4] Title (Author)"), never a citation."""
    return [*RAG_ANSWER_STOP, *(f"\n[{n}] " for n in range(passages + 1, passages + 3))]


def rag_user_message(question: str, passages: Sequence[ContextPassage]) -> str:
    return RAG_USER_TEMPLATE.format(context=format_context(passages), question=question.strip())


def build_rag_messages(
    question: str,
    passages: Sequence[ContextPassage],
    history: Sequence[Message] = (),
    system_prompt: str = TWIN_SYSTEM_PROMPT,
) -> list[Message]:
    """[system, *earlier turns, user(context + question)]: the messages the twin answers."""
    return [
        {"role": "system", "content": system_prompt},
        *history,
        {"role": "user", "content": rag_user_message(question, passages)},
    ]


def build_sft_messages(instruction: str, answer: str, context: Sequence[ContextPassage] = ()) -> list[Message]:
    """One fine-tuning sample in the exact shape served at inference (with or without retrieved context)."""
    if context:
        messages = build_rag_messages(instruction, context)
    else:
        messages = [
            {"role": "system", "content": TWIN_SYSTEM_PROMPT_NO_CONTEXT},
            {"role": "user", "content": instruction.strip()},
        ]
    return [*messages, {"role": "assistant", "content": answer.strip()}]


_CITATION = re.compile(r"\[(\d{1,3})\]")


def cited_numbers(answer: str, available: int) -> list[int]:
    """The source numbers an answer cites ([1], [2] ...), in first-cited order, ignoring out-of-range ones."""
    seen: list[int] = []
    for match in _CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= available and number not in seen:
            seen.append(number)
    return seen


# --- Query expansion ------------------------------------------------------------------------------------------
QUERY_EXPANSION_SYSTEM = "You rewrite search queries. Reply with JSON only."
QUERY_EXPANSION_TEMPLATE = (
    "Write {n} different search queries that ask the same thing as this question, using other words.\n"
    "Question: {question}"
)


def query_expansion_messages(question: str, n: int) -> list[Message]:
    return [
        {"role": "system", "content": QUERY_EXPANSION_SYSTEM},
        {"role": "user", "content": QUERY_EXPANSION_TEMPLATE.format(n=n, question=question.strip())},
    ]


def query_expansion_schema(n: int, max_chars: int = 300) -> dict[str, Any]:
    return {
        "title": "query_expansion",
        "type": "object",
        "properties": {
            "queries": {
                "type": "array",
                "items": {"type": "string", "minLength": 3, "maxLength": max_chars},
                "minItems": n,
                "maxItems": n,
            }
        },
        "required": ["queries"],
        "additionalProperties": False,
    }


# --- Self-query (which author does the question name?) -----------------------------------------------------------
SELF_QUERY_SYSTEM = "You extract metadata from questions. Reply with JSON only."
SELF_QUERY_TEMPLATE = (
    "Known authors: {authors}.\n"
    "Which known author does the question name? Use null if it names none.\n"
    "Question: {question}"
)


def self_query_messages(question: str, authors: Sequence[str]) -> list[Message]:
    return [
        {"role": "system", "content": SELF_QUERY_SYSTEM},
        {
            "role": "user",
            "content": SELF_QUERY_TEMPLATE.format(authors="; ".join(authors), question=question.strip()),
        },
    ]


def self_query_schema(authors: Sequence[str]) -> dict[str, Any]:
    # The enum makes the decoder unable to invent a name: the answer is a known author or null.
    return {
        "title": "self_query",
        "type": "object",
        "properties": {"author": {"enum": [*authors, None]}},
        "required": ["author"],
        "additionalProperties": False,
    }
