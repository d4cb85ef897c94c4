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


# Chat-template control sequences (ChatML's <|im_start|>/<|im_end|>, <|endoftext|>, Llama 3's <|eot_id|> ...).
# Text from users, history and crawled pages must never contain one intact, or the tokenizer turns it into the
# real special token and the text can open a system turn of its own (prompt-format injection).
_CONTROL_SEQUENCE = re.compile(r"<\|([^<>|\n]{0,40})\|>")
_ZERO_WIDTH_SPACE = "\u200b"


def neutralize_control_tokens(text: str) -> str:
    """Break every `<|...|>` sequence with an invisible zero-width space: it reads the same, tokenizes as text."""
    return _CONTROL_SEQUENCE.sub(lambda m: f"<{_ZERO_WIDTH_SPACE}|{m[1]}|{_ZERO_WIDTH_SPACE}>", text)


def render_chatml(messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """TWIN_CHAT_TEMPLATE in plain Python (for datasets and token counting without a tokenizer)."""
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


# Tokens the template adds per message ("<|im_start|>role\n ... <|im_end|>\n"), for budget arithmetic.
CHATML_TOKENS_PER_MESSAGE = 5
CHATML_GENERATION_PROMPT_TOKENS = 3

# --- The twin ----------------------------------------------------------------------------------------------------
SYSTEM_PROMPT_OPENING = "You are the LLM Twin"
TWIN_SYSTEM_PROMPT = (
    f"{SYSTEM_PROMPT_OPENING} of the authors whose writing is given as context: answer in their voice, "
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


def passage_header(number: int, title: str, author: str) -> str:
    """A passage's header line as the prompt shows it ("[2] Title (Author)")."""
    return f"[{number}] {title} ({author})"


# Citation numbers an answer can use at most (single digits: "[1]" .. "[9]").
MAX_PASSAGE_NUMBER = 9


def answer_bad_words(title_openings: Sequence[str], passages: int) -> list[str]:
    """What an answer may never write (the engine's bad words; its last token is banned right after the rest):

    - a passage header after its number: each `title_openings` is "] " + the title's first token, so "[2]" can
      still cite but never go on into a title. A whole title would not do: the model pastes it with one token
      changed ("Bottlenones") and the ban, which matches exact tokens, lets it through.
    - a number no passage has ("[4" with 3 passages): neither a valid citation nor a real header can use it, and
      made-up headers ("[4] A note on ...") are what a model that pastes headers writes most;
    - the system prompt's opening: a model reciting its instructions instead of answering.
    """
    unused = [f"[{n}" for n in range(passages + 1, MAX_PASSAGE_NUMBER + 1)]
    return [*dict.fromkeys(title_openings), *unused, SYSTEM_PROMPT_OPENING]


def format_passage(passage: ContextPassage) -> str:
    text = f"{passage_header(passage.number, passage.title, passage.author)}\n{passage.text.strip()}"
    return neutralize_control_tokens(text)  # crawled text is untrusted too


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
    question = neutralize_control_tokens(question.strip())
    return RAG_USER_TEMPLATE.format(context=format_context(passages), question=question)


def build_rag_messages(
    question: str,
    passages: Sequence[ContextPassage],
    history: Sequence[Message] = (),
    system_prompt: str = TWIN_SYSTEM_PROMPT,
) -> list[Message]:
    """[system, *earlier turns, user(context + question)]: the messages the twin answers."""
    return [
        {"role": "system", "content": system_prompt},
        *({"role": m["role"], "content": neutralize_control_tokens(m["content"])} for m in history),
        {"role": "user", "content": rag_user_message(question, passages)},
    ]


def build_sft_messages(instruction: str, answer: str, context: Sequence[ContextPassage] = ()) -> list[Message]:
    """One fine-tuning sample in the exact shape served at inference (with or without retrieved context)."""
    if context:
        messages = build_rag_messages(instruction, context)
    else:
        messages = [
            {"role": "system", "content": TWIN_SYSTEM_PROMPT_NO_CONTEXT},
            {"role": "user", "content": neutralize_control_tokens(instruction.strip())},
        ]
    return [*messages, {"role": "assistant", "content": neutralize_control_tokens(answer.strip())}]


_CITATION = re.compile(r"\[(\d{1,3})\]")
_CITATION_MARK = re.compile(r"\s*\[\d{1,3}\]")


def without_citations(text: str) -> str:
    """`text` without its citation markers ("tokens [1]. More" -> "tokens. More")."""
    return _CITATION_MARK.sub("", text)


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


# --- Reranking by query likelihood ------------------------------------------------------------------------------
# A causal LM reranks passages by how likely it finds the question after reading each one (log P(question |
# passage), Sachan et al. 2022, "Improving Passage Retrieval with Zero-Shot Question Generation"). The question is
# scored as the assistant's turn; this prompt is the user's.
QUERY_LIKELIHOOD_SYSTEM = "You write the questions that readers ask."
QUERY_LIKELIHOOD_TEMPLATE = "Passage:\n{passage}\n\nWrite a question that this passage answers."


def query_likelihood_messages(passage: str) -> list[Message]:
    text = neutralize_control_tokens(passage.strip())
    return [
        {"role": "system", "content": QUERY_LIKELIHOOD_SYSTEM},
        {"role": "user", "content": QUERY_LIKELIHOOD_TEMPLATE.format(passage=text)},
    ]


# --- Dataset generation (instruction back-translation, preference pairs, judge) ---------------------------------
# The author's extract is always the answer, verbatim: the LLM only writes the questions it answers. A rejected
# answer is the base model's own reply to the same no-context prompt the twin is trained with.
INSTRUCTIONS_SYSTEM = "You write the questions that readers ask. Reply with JSON only."
INSTRUCTIONS_TEMPLATE = (
    "Text:\n{extract}\n\n"
    "Write {n} different questions that a reader could ask and that the text above answers. "
    "Each question must make sense on its own."
)
JUDGE_SYSTEM = "You grade question and answer pairs. Reply with JSON only."
JUDGE_TEMPLATE = (
    "Question: {instruction}\n\nAnswer:\n{answer}\n\n"
    "Is the question natural, and does the answer fully answer it? Score from 1 (no) to 5 (yes)."
)


def instruction_messages(extract: str, n: int) -> list[Message]:
    return [
        {"role": "system", "content": INSTRUCTIONS_SYSTEM},
        {"role": "user", "content": INSTRUCTIONS_TEMPLATE.format(extract=extract.strip(), n=n)},
    ]


def instructions_schema(n: int, min_chars: int = 10, max_chars: int = 200) -> dict[str, Any]:
    return {
        "title": "instructions",
        "type": "object",
        "properties": {
            "questions": {
                "type": "array",
                "items": {"type": "string", "minLength": min_chars, "maxLength": max_chars},
                "minItems": n,
                "maxItems": n,
            }
        },
        "required": ["questions"],
        "additionalProperties": False,
    }


def judge_messages(instruction: str, answer: str) -> list[Message]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": JUDGE_TEMPLATE.format(instruction=instruction.strip(), answer=answer.strip())},
    ]


def judge_schema() -> dict[str, Any]:
    return {
        "title": "judge_score",
        "type": "object",
        "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
        "required": ["score"],
        "additionalProperties": False,
    }


def preference_prompt(instruction: str) -> list[Message]:
    """The chat before the answer in a preference pair: the twin's no-context shape (as in build_sft_messages)."""
    return build_sft_messages(instruction, "x")[:-1]


# What the twin says when the numbered context does not hold the answer (unanswerable training samples).
UNANSWERED_ANSWER = "The sources I have here don't cover that, so I won't guess."


def cite_source(answer: str, number: int) -> str:
    """The author's text, citing the passage it comes from, as a RAG answer does."""
    return f"{answer.rstrip()} [{number}]"


_CLOSING = re.compile(r"([.!?…]+[\"')\]]*)$")


def cite_first_sentence(sentences: list[str], number: int) -> str:
    """The author's sentences with the passage cited in the first one ("… 256 tokens [1]. Anything longer …"):
    a small model that learns to quote keeps quoting to its length limit, so a citation learnt at the end of a
    quote is rarely reached; one learnt after the first sentence is."""
    if not sentences:
        return ""
    return " ".join([cite_sentence(sentences[0], number), *sentences[1:]])


def cite_sentence(sentence: str, number: int) -> str:
    """One sentence citing passage `number` before its closing punctuation ("… 256 tokens [1].")."""
    sentence = sentence.rstrip()
    match = _CLOSING.search(sentence)
    return f"{sentence[: match.start()]} [{number}]{match.group(1)}" if match else f"{sentence} [{number}]"


def _prompt_version() -> str:
    import hashlib

    parts = (INSTRUCTIONS_SYSTEM, INSTRUCTIONS_TEMPLATE, JUDGE_SYSTEM, JUDGE_TEMPLATE, TWIN_SYSTEM_PROMPT_NO_CONTEXT)
    return "datasets-v1-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]


# Part of every generation's cache key: editing a prompt above invalidates the cached generations.
DATASET_PROMPT_VERSION = _prompt_version()
