"""The evaluation report's PNG plots (matplotlib, Agg backend): metric bars per model, training loss curves and
per-question scores."""

from __future__ import annotations

import io
import math
from typing import Any

from loguru import logger

from llm_engineering.application.evaluation.report import EvaluationReport, fmt
from llm_engineering.application.evaluation.results import (
    finite,
    metric_info,
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def plot_metric_bars(report: EvaluationReport) -> bytes | None:
    keys = report.headline()
    if not keys:
        return None
    plt = _pyplot()
    names = list(report.summary)
    cols = 4
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    colors = ["#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b"]
    for ax, key in zip(axes.flat, keys, strict=False):
        values = [report.summary[n].get(key) for n in names]
        heights = [v if v is not None else 0 for v in values]
        bars = ax.bar(names, heights, color=colors[: len(names)] or None)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(
                fmt(value, key),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        info = metric_info(key)
        ax.set_title(f"{info.label} ({'↑' if info.higher_is_better else '↓'})", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def plot_training_curves(training: dict[str, Any]) -> bytes | None:
    curves = {stage: entries for stage, entries in (training.get("curves") or {}).items() if entries}
    if not curves:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 3.2), squeeze=False)
    for ax, (stage, entries) in zip(axes.flat, curves.items(), strict=True):
        steps = [e.get("step") for e in entries if "loss" in e]
        losses = [e.get("loss") for e in entries if "loss" in e]
        ax.plot(steps, losses, marker="o", markersize=3, label="train loss")
        evals = [(e.get("step"), e.get("eval_loss")) for e in entries if "eval_loss" in e]
        if evals:
            ax.plot([s for s, _ in evals], [v for _, v in evals], "s--", label="test loss")
        ax.set_title(f"{stage.upper()} loss ({training.get('version', '')})", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def plot_per_question(report: EvaluationReport) -> bytes | None:
    """Per-question scores: perplexity of each held-out answer, and ROUGE-L of each RAG answer, per model."""
    panels: list[tuple[str, dict[str, list[float | None]], bool]] = []
    ppl = {
        v.model: [r.get("perplexity") for r in v.rows if r.get("kind") == "perplexity"]
        for v in report.voice
        if any(r.get("kind") == "perplexity" for r in v.rows)
    }
    if ppl:
        panels.append(("perplexity per held-out answer (log scale, lower is better)", ppl, True))
    rouge = {
        g.model: [finite(a.metrics.get("rag.rouge_l")) for a in g.rag_answers]
        for g in report.generations
        if g.rag_answers
    }
    if rouge:
        panels.append(("ROUGE-L per QA answer (higher is better)", rouge, False))
    judged = {r.model: [finite(row.get("accuracy")) for row in r.rows] for r in report.judge.results if r.rows}
    if judged:
        panels.append(("judge accuracy per answer (1-3)", judged, False))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3 * len(panels)), squeeze=False)
    for ax, (title, series, log) in zip(axes.flat, panels, strict=True):
        width = 0.8 / max(1, len(series))
        for j, (name, values) in enumerate(series.items()):
            xs = [i + j * width for i in range(len(values))]
            ax.bar(xs, [v if v is not None else 0 for v in values], width=width, label=name)
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("question #")
        ax.legend(fontsize=8)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def render_plots(report: EvaluationReport) -> dict[str, bytes]:
    try:
        _pyplot()
    except ImportError as exc:
        report.notes.append(f"no plots: matplotlib is not installed ({exc}); install the `eval` extra")
        return {}
    plots: dict[str, bytes] = {}
    for name, build in (
        ("metrics.png", lambda: plot_metric_bars(report)),
        ("training_loss.png", lambda: plot_training_curves(report.training)),
        ("per_question.png", lambda: plot_per_question(report)),
    ):
        try:
            data = build()
        except Exception as exc:  # a broken plot never loses the numbers
            logger.warning(f"plot {name} failed: {type(exc).__name__}: {exc}")
            report.notes.append(f"plot {name} failed: {exc}")
            continue
        if data:
            plots[name] = data
    return plots
