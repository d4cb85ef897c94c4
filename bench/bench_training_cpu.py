"""The whole CPU training path (SFT -> merge -> DPO -> merge -> register) on a dataset folder, timed.

    .venv/bin/python bench/bench_training_cpu.py [--config configs/training.yaml] [--dataset DIR]
        [--precision-steps 4] [--output bench/results/training_cpu.json]

Runs `train_twin` in-process in a throw-away DATA_DIR (the packaged model linked in, so the user's registry is
untouched) and records SFT and DPO tokens/s and s/step, the wall time of each stage and of the whole path,
loss before/after, the CPU (lscpu model and flags) and the machine's load average (the reference machine is
shared: a busy neighbour slows every number). `--precision-steps N` also times N SFT steps in fp32 and in bf16
(autocast), twice each, interleaved — the measurement behind the cpu backend's fp32 default.

Goal (issue #10): the whole CPU path on the sample author's datasets in <= 10 minutes on 2 cores.
Default dataset: the newest generated one (DATA_DIR/datasets), else the hand-made tiny test dataset.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see docs/training.md
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")

import click  # noqa: E402
from common import machine  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
TINY_DATASET = PROJECT_ROOT / "tests" / "integration" / "training" / "tiny_dataset"


def cpu_info() -> dict:
    """The shared machine facts (bench/common.py: CPU model, SIMD and all flags, CPUs, Python)."""
    return machine(torch=False)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def default_dataset() -> Path:
    from llm_engineering.application.datasets.reader import resolve_dataset_dir
    from llm_engineering.domain.errors import ConfigurationError
    from llm_engineering.wiring import get_container

    try:
        return resolve_dataset_dir(get_container().artifacts("datasets"))
    except ConfigurationError:
        return TINY_DATASET


def time_precisions(config, dataset: Path, model_dir: Path, steps: int, scratch: Path) -> dict:
    """N SFT steps in fp32 and in bf16 (CPU autocast), twice each, interleaved: median s/step."""
    from llm_engineering.application.datasets.reader import load_training_data
    from llm_engineering.infrastructure.ml.training.backends import select_backend
    from llm_engineering.infrastructure.ml.training.sft import run_sft

    data = load_training_data(dataset, need_preference=False)
    timings: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for repeat in range(2):
        for precision in ("fp32", "bf16"):
            trial = config.model_copy(
                update={
                    "precision": precision,
                    "backend": "cpu",
                    "sft": config.sft.model_copy(update={"max_steps": steps, "eval": False, "save_steps": 10_000}),
                }
            )
            result = run_sft(
                trial,
                data,
                base_model=str(model_dir),
                stage_dir=scratch / f"{precision}-{repeat}",
                plan=select_backend(trial),
            )
            timings[precision].append(result.metrics["s_per_step"])
            click.echo(f"  {precision} run {repeat + 1}: {result.metrics['s_per_step']} s/step", err=True)
    medians = {p: round(statistics.median(v), 3) for p, v in timings.items()}
    return {
        "steps_per_trial": steps,
        "s_per_step": timings,
        "median_s_per_step": medians,
        "bf16_speedup": round(medians["fp32"] / medians["bf16"], 3) if medians["bf16"] else None,
    }


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=PROJECT_ROOT / "configs/training.yaml"
)
@click.option("--dataset", type=click.Path(path_type=Path), default=None, help="Dataset folder (default: newest).")
@click.option("--precision-steps", type=int, default=0, help="Also time N SFT steps in fp32 vs bf16 (0: skip).")
@click.option("--output", type=click.Path(path_type=Path), default=PROJECT_ROOT / "bench/results/training_cpu.json")
@click.option("--precision-only", is_flag=True, help="Only the fp32/bf16 timing, added to an existing --output.")
def main(config_path: Path, dataset: Path | None, precision_steps: int, output: Path, precision_only: bool) -> None:
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_DIRNAME, prepare_packaged_model
    from llm_engineering.infrastructure.ml.training.config import load_training_config
    from llm_engineering.settings import Settings
    from llm_engineering.wiring.training import train_twin

    config = load_training_config(config_path)
    dataset = (dataset or default_dataset()).resolve()
    model_dir = prepare_packaged_model(Settings())
    if precision_only:
        result = json.loads(output.read_text(encoding="utf-8")) if output.is_file() else {"machine": cpu_info()}
        with tempfile.TemporaryDirectory(prefix="bench-precision-") as scratch:
            load_before = load_average()
            timing = time_precisions(config, dataset, model_dir, precision_steps or 4, Path(scratch))
            result["precision"] = {**timing, "load_avg_before": load_before, "load_avg_after": load_average()}
        output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        click.echo(json.dumps(result["precision"], indent=2))
        return
    result: dict = {
        "benchmark": "training_cpu",
        "config": str(config_path.resolve().relative_to(PROJECT_ROOT)),
        "dataset": str(dataset.relative_to(PROJECT_ROOT)) if dataset.is_relative_to(PROJECT_ROOT) else str(dataset),
        "dataset_is_tiny_test_set": dataset == TINY_DATASET.resolve(),
        "machine": cpu_info(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_avg_before": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        data_dir = Path(scratch) / "data"
        (data_dir / "models").mkdir(parents=True)
        (data_dir / "models" / PACKAGED_MODEL_DIRNAME).symlink_to(model_dir, target_is_directory=True)
        settings = Settings(data_dir=data_dir)
        started, cpu_started = time.monotonic(), cpu_seconds()
        report = train_twin(config, dataset, settings=settings)
        wall = round(time.monotonic() - started, 2)
        cpu = round(cpu_seconds() - cpu_started, 1)
        result["load_avg_after_training"] = load_average()
        sft, dpo = report.sft.metrics, report.dpo.metrics if report.dpo else {}
        keys = ("global_step", "s_per_step", "tokens_per_s", "session_tokens", "train_runtime_s", "wall_s", "merge_s")
        result["dataset_counts"] = report.dataset.counts
        result["backend"] = report.backend.model_dump()
        result["sft"] = {k: sft.get(k) for k in keys} | {
            "loss_first_logged": sft.get("first_logged_loss"),
            "loss_last_logged": sft.get("last_logged_loss"),
            "test_loss_before": sft.get("eval_loss_before"),
            "test_loss_after": sft.get("eval_loss"),
            "test_perplexity_before": sft.get("eval_perplexity_before"),
            "test_perplexity_after": sft.get("eval_perplexity"),
            "truncated_samples": sft.get("truncated_samples"),
        }
        result["dpo"] = {k: dpo.get(k) for k in keys} | {
            "loss_first_logged": dpo.get("first_logged_loss"),
            "loss_last_logged": dpo.get("last_logged_loss"),
            "test_reward_accuracy": dpo.get("eval_rewards_accuracies"),
            "test_reward_margin": dpo.get("eval_rewards_margins"),
        }
        result["stage_wall_s"] = report.timings_s
        result["whole_path_wall_s"] = wall
        # On a shared machine wall time depends on the neighbours; the process's own CPU time much less so.
        # cpu_s / cores is what the path would take with both cores to itself (perfect 2-thread scaling: a bound).
        result["whole_path_cpu_s"] = cpu
        result["whole_path_cpu_s_per_core"] = round(cpu / max(os.cpu_count() or 1, 1), 1)
        result["goal"] = "whole CPU path (SFT -> merge -> DPO -> merge -> register) <= 600 s on the sample datasets"
        result["goal_met"] = wall <= 600
        result["registered"] = report.registered.version if report.registered else None
        if precision_steps:
            click.echo("Timing fp32 vs bf16 SFT steps ...", err=True)
            result["precision"] = time_precisions(config, dataset, model_dir, precision_steps, Path(scratch) / "prec")
        result["load_avg_after"] = load_average()
        result["versions"] = report.environment
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
