"""The evaluation report: `report.json` (every number, per model and per question), PNG plots, and a
self-contained `report.html` (tables + the same plots embedded as base64 PNG: it opens anywhere, offline).

Plots use matplotlib with the Agg backend (no display). Without matplotlib the report is written without plots,
and says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, Field

from llm_engineering.application.evaluation.results import (
    METRICS,
    GenerationResult,
    JudgePhase,
    PromotionDecision,
    Skipped,
    VoiceResult,
    finite,
    metric_info,
)

# Metrics in the summary table and the bar chart, in this order (others are in report.json).
HEADLINE = (
    "voice.perplexity",
    "voice.dpo_reward_accuracy",
    "voice.preference_accuracy",
    "style.distance",
    "style.function_word_jsd",
    "judge.accuracy",
    "judge.style",
    "judge.win_rate_vs_author",
    "judge.agreement",
    "rag.faithfulness",
    "rag.answer_relevancy",
    "rag.context_precision",
    "rag.context_recall",
    "rag.nonllm_context_precision",
    "rag.nonllm_context_recall",
    "rag.string_similarity",
    "rag.rouge_l",
    "rag.citation_valid_rate",
    "rag.citation_supported_rate",
    "speed.latency_p50_s",
    "speed.tokens_per_s",
)


class EvaluationReport(BaseModel):
    version: str
    created_at: str
    output_dir: str
    models: list[dict[str, Any]]
    dataset: dict[str, Any]
    qa: dict[str, Any]
    summary: dict[str, dict[str, float | None]] = Field(description="model -> metric -> value")
    style_floor: dict[str, float | None] = Field(default_factory=dict, description="author's train vs test answers")
    voice: list[VoiceResult] = Field(default_factory=list)
    generations: list[GenerationResult] = Field(default_factory=list)
    judge: JudgePhase = Field(default_factory=JudgePhase)
    retrieval: dict[str, Any] = Field(default_factory=dict)
    skipped: list[Skipped] = Field(default_factory=list)
    promotion: PromotionDecision | None = None
    training: dict[str, Any] = Field(default_factory=dict, description="loss curves of the twin's training run")
    config: dict[str, Any] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    plots: dict[str, str] = Field(default_factory=dict, description="plot name -> PNG file name")

    def headline(self) -> list[str]:
        present = {k for values in self.summary.values() for k, v in values.items() if v is not None}
        return [k for k in HEADLINE if k in present]

    def table_rows(self) -> list[tuple[str, list[float | None]]]:
        names = list(self.summary)
        return [(key, [self.summary[n].get(key) for n in names]) for key in self.headline()]


def build_summary(
    model_names: list[str], voice: list[VoiceResult], generations: list[GenerationResult], judge: JudgePhase
) -> dict[str, dict[str, float | None]]:
    summary: dict[str, dict[str, float | None]] = {name: {} for name in model_names}
    for result in [*voice, *generations, *judge.results]:
        target = summary.setdefault(result.model, {})
        target.update({k: finite(v) for k, v in result.metrics.items()})
    return summary


def compute_style_floor(train_answers: list[str], test_answers: list[str]) -> dict[str, float | None]:
    """The author against themself (train vs test answers): the distance a perfect twin could reach."""
    from llm_engineering.application.evaluation.voice import style_metrics

    if not train_answers:
        return {}
    return style_metrics(train_answers, test_answers)


# --- formatting -------------------------------------------------------------------------------------------------


def fmt(value: float | None, key: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if key.endswith("perplexity") or abs(value) >= 100:
        return f"{value:.2f}"
    return f"{value:.3f}"


def best_index(key: str, values: list[float | None]) -> int | None:
    numbers = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(numbers) < 2:
        return None
    pick = max if metric_info(key).higher_is_better else min
    value, index = pick(numbers)
    return None if all(v == value for v, _ in numbers) else index  # a tie has no best


def text_table(report: EvaluationReport, keys: list[str] | None = None, models: list[str] | None = None) -> str:
    """The summary table as plain text (for the CLI and README); `keys` / `models` pick rows / columns."""
    names = [n for n in report.summary if models is None or n in models]
    rows = [(k, [report.summary[n].get(k) for n in names]) for k in (keys or report.headline())]
    width = max([len(metric_info(k).label) for k, _ in rows] + [10])
    lines = [f"  {'metric':<{width}}  " + "".join(f"{n:>12}" for n in names) + "  better"]
    for key, values in rows:
        info = metric_info(key)
        arrow = "higher" if info.higher_is_better else "lower"
        lines.append(f"  {info.label:<{width}}  " + "".join(f"{fmt(v, key):>12}" for v in values) + f"  {arrow}")
    return "\n".join(lines)


# --- plots -------------------------------------------------------------------------------------------------------


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


# --- HTML ----------------------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.3rem .5rem;vertical-align:top}
th{background:#f5f5f5;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:bold;background:#eef8ee}
.warn{background:#fff4e5;border:1px solid #f0c36d;padding:.6rem;border-radius:4px}
.ok{background:#eef8ee;border:1px solid #9c9;padding:.6rem;border-radius:4px}img{max-width:100%;border:1px solid #eee}
details{margin:.4rem 0}small{color:#666}.answer{max-width:520px;white-space:pre-wrap}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(name: str, data: bytes | None, alt: str) -> str:
    if not data:
        return f"<p><small>({_e(alt)}: no data)</small></p>"
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{_e(alt)}" data-plot="{_e(name)}" src="data:image/png;base64,{encoded}">'


def _error_note(metrics: dict[str, Any], key: str) -> str:
    error = metrics.get(f"{key}_error")
    return f"<br><small>{_e(error)}</small>" if error else ""


def render_html(report: EvaluationReport, plots: dict[str, bytes]) -> str:
    names = list(report.summary)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>LLM Twin evaluation {_e(report.version)}</title><style>{CSS}</style></head><body>",
        f"<h1>LLM Twin evaluation <small>{_e(report.version)}</small></h1>",
        f"<p>{_e(report.created_at)} · dataset <code>{_e(report.dataset.get('version'))}</code> "
        f"({_e(report.dataset.get('counts'))}) · QA <code>{_e(report.qa.get('path'))}</code> "
        f"({_e(report.qa.get('questions'))} questions, {_e(report.qa.get('answered'))} answered by each model)</p>",
    ]
    if report.promotion:
        p = report.promotion
        css = "ok" if p.promote else "warn"
        verb = "promoted to production" if p.applied else ("would be promoted" if p.promote else "not promoted")
        parts.append(f"<div class='{css}'><b>Promotion: {_e(p.candidate)} {verb}.</b> {_e(p.reason)}</div>")
    if report.judge.warning:
        parts.append(f"<p class='warn'>{_e(report.judge.warning)}</p>")
    # models
    parts.append("<h2>Models</h2><table><tr><th>name</th><th>asked for</th><th>checkpoint</th><th>registry</th></tr>")
    for m in report.models:
        registry = f"{m.get('registry_name')}:{m.get('registry_version')}" if m.get("registry_version") else ""
        parts.append(
            f"<tr><td>{_e(m['name'])}</td><td>{_e(m['spec'])}</td><td><code>{_e(m['path'])}</code></td>"
            f"<td>{_e(registry)}</td></tr>"
        )
    parts.append("</table>")
    # summary
    parts.append("<h2>Summary</h2><table><tr><th>metric</th>")
    parts += [f"<th>{_e(n)}</th>" for n in names]
    parts.append("<th>better</th><th>meaning</th></tr>")
    for key, values in report.table_rows():
        info = metric_info(key)
        best = best_index(key, values)
        cells = "".join(
            f"<td class='num{' best' if i == best else ''}'>{fmt(v, key)}</td>" for i, v in enumerate(values)
        )
        arrow = "↑ higher" if info.higher_is_better else "↓ lower"
        parts.append(f"<tr><td>{_e(info.label)}<br><small>{_e(key)}</small></td>{cells}<td>{arrow}</td>")
        parts.append(f"<td><small>{_e(info.description)}</small></td></tr>")
    parts.append("</table>")
    if report.style_floor.get("style.distance") is not None:
        parts.append(
            f"<p><small>Style floor — the author's train answers vs their test answers: distance "
            f"{fmt(report.style_floor.get('style.distance'))} (a perfect twin would get about this).</small></p>"
        )
    parts.append("<h2>Metrics per model</h2>" + _img("metrics.png", plots.get("metrics.png"), "metric bars per model"))
    # skipped
    parts.append("<h2>Skipped or failed metrics</h2>")
    if report.skipped:
        parts.append("<table><tr><th>metric</th><th>models</th><th>why</th></tr>")
        parts += [
            f"<tr><td>{_e(s.metric)}</td><td>{_e(', '.join(s.models) or 'all')}</td><td>{_e(s.reason)}</td></tr>"
            for s in report.skipped
        ]
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    # judge
    j = report.judge
    parts.append("<h2>Judge</h2>")
    parts.append(
        f"<p>status <b>{_e(j.status)}</b>{(' — ' + _e(j.reason)) if j.reason else ''}; endpoint "
        f"<code>{_e(j.base_url)}</code>, model <code>{_e(j.model)}</code>; calls/retries/missing/Ragas: "
        f"{_e(j.ragas)}</p>"
    )
    # training
    parts.append("<h2>Training loss</h2>")
    parts.append(_img("training_loss.png", plots.get("training_loss.png"), "training loss curves"))
    if report.training.get("final"):
        parts.append(f"<p><small>final training metrics: {_e(report.training['final'])}</small></p>")
    # retrieval
    parts.append("<h2>Retrieval (model-independent)</h2>")
    if report.retrieval.get("overall"):
        modes = report.retrieval["overall"]
        keys = [k for k in next(iter(modes.values())) if k != "questions"]
        parts.append("<table><tr><th>mode</th>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr>")
        for mode, values in modes.items():
            parts.append(
                f"<tr><td>{_e(mode)}</td>" + "".join(f"<td class='num'>{fmt(values[k])}</td>" for k in keys) + "</tr>"
            )
        parts.append("</table>")
    else:
        parts.append(f"<p>{_e(report.retrieval.get('skipped', 'not run'))}</p>")
    # per question
    parts.append("<h2>Per question</h2>")
    parts.append(_img("per_question.png", plots.get("per_question.png"), "per-question scores"))
    for generation in report.generations:
        parts.append(f"<details><summary>{_e(generation.model)}: RAG answers ({len(generation.rag_answers)})</summary>")
        parts.append(
            "<table><tr><th>#</th><th>question</th><th>answer</th><th>reference</th><th>ROUGE-L</th>"
            "<th>citations valid / supported</th><th>faithfulness</th></tr>"
        )
        for a in generation.rag_answers:
            m = a.metrics
            parts.append(
                f"<tr><td>{_e(a.id)}</td><td>{_e(a.question)}</td><td class='answer'>{_e(a.error or a.answer)}</td>"
                f"<td class='answer'>{_e(a.reference or '')}</td><td class='num'>{fmt(finite(m.get('rag.rouge_l')))}"
                f"</td><td class='num'>{fmt(finite(m.get('rag.citation_valid_rate')))} / "
                f"{fmt(finite(m.get('rag.citation_supported_rate')))}</td>"
                f"<td class='num'>{fmt(finite(m.get('rag.faithfulness')))}"
                f"{_error_note(m, 'rag.faithfulness')}</td></tr>"
            )
        parts.append("</table></details>")
        parts.append(
            f"<details><summary>{_e(generation.model)}: answers to held-out instructions "
            f"({len(generation.voice_answers)})</summary><table><tr><th>#</th><th>instruction</th>"
            "<th>model</th><th>author</th></tr>"
        )
        for a in generation.voice_answers:
            parts.append(
                f"<tr><td>{_e(a.id)}</td><td>{_e(a.question)}</td><td class='answer'>{_e(a.error or a.answer)}</td>"
                f"<td class='answer'>{_e(a.reference or '')}</td></tr>"
            )
        parts.append("</table></details>")
    for result in report.judge.results:
        parts.append(f"<details><summary>{_e(result.model)}: judge verdicts ({len(result.rows)})</summary><table>")
        parts.append(
            "<tr><th>#</th><th>accuracy</th><th>style</th><th>model first</th><th>author first</th>"
            "<th>consistent</th></tr>"
        )
        for row in result.rows:
            parts.append(
                f"<tr><td>{_e(row.get('id'))}</td><td>{_e(row.get('accuracy'))}</td><td>{_e(row.get('style'))}</td>"
                f"<td>{_e(row.get('model_first'))}</td><td>{_e(row.get('author_first'))}</td>"
                f"<td>{_e(row.get('consistent'))}</td></tr>"
            )
        parts.append("</table></details>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    parts.append(
        "<h2>Metric definitions</h2><table><tr><th>key</th><th>metric</th><th>better</th><th>meaning</th></tr>"
        + "".join(
            f"<tr><td><code>{_e(k)}</code></td><td>{_e(i.label)}</td><td>{'higher' if i.higher_is_better else 'lower'}"
            f"</td><td>{_e(i.description)}</td></tr>"
            for k, i in METRICS.items()
        )
        + "</table>"
    )
    parts.append(f"<p><small>timings (s): {_e(report.timings_s)}</small></p></body></html>")
    return "".join(parts)


def write_report(report: EvaluationReport, output_dir: str | Path | None = None) -> dict[str, str]:
    """report.json, report.html and the PNGs into the output folder; returns {kind: path}."""
    out = Path(output_dir or report.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = render_plots(report)
    for name, data in plots.items():
        (out / name).write_bytes(data)
    report.plots = {name.removesuffix(".png"): name for name in plots}
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report.model_dump(mode="json"), indent=2, default=str) + "\n", encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(render_html(report, plots), encoding="utf-8")
    paths = {"json": str(json_path), "html": str(html_path)}
    paths.update({name: str(out / name) for name in plots})
    return paths
