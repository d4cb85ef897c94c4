"""The evaluation report's files: `report.json` (every number), the PNG plots and one self-contained `report.html`
rendered from `templates/report.html.j2` (tables + the plots embedded as base64 PNG: it opens anywhere, offline)."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from llm_engineering.application.evaluation.report import EvaluationReport, best_index, fmt
from llm_engineering.application.evaluation.report_plots import render_plots
from llm_engineering.application.evaluation.results import METRICS, finite, metric_info

TEMPLATES = Path(__file__).parent / "templates"

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


@cache
def _template() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]), undefined=StrictUndefined
    )
    return environment.get_template("report.html.j2")


def render_html(report: EvaluationReport, plots: dict[str, bytes]) -> str:
    def img(name: str, alt: str) -> Markup:
        data = plots.get(name)
        if not data:
            return Markup("<p><small>({}: no data)</small></p>").format(alt)
        encoded = base64.b64encode(data).decode("ascii")
        return Markup('<img alt="{}" data-plot="{}" src="data:image/png;base64,{}">').format(alt, name, encoded)

    summary_rows = [
        {
            "key": key,
            "info": metric_info(key),
            "cells": [fmt(v, key) for v in values],
            "best": best_index(key, values),
        }
        for key, values in report.table_rows()
    ]
    floor = report.style_floor.get("style.distance")
    overall = report.retrieval.get("overall") or {}
    retrieval_keys = [k for k in next(iter(overall.values())) if k != "questions"] if overall else []
    return _template().render(
        report=report,
        css=CSS,
        summary_rows=summary_rows,
        style_floor=fmt(floor) if floor is not None else None,
        retrieval_keys=retrieval_keys,
        metrics=METRICS,
        img=img,
        fmt=fmt,
        finite=finite,
    )


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
