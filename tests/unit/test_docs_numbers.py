"""README/docs numbers and .env.example agree with their sources (bench/results/*.json, Settings)."""

from __future__ import annotations

import json

import pytest

from tools import docs_numbers, env_example
from tools.docs_numbers import Results, SpanError, render, spans

ROOT = docs_numbers.ROOT


@pytest.mark.parametrize("path", docs_numbers.doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_number_matches_its_results_file(path):
    text = path.read_text(encoding="utf-8")
    results = Results(ROOT / "bench" / "results")
    # Raises SpanError naming the file and line when a span points at a missing file or key.
    assert render(text, results, str(path.relative_to(ROOT))) == text, (
        f"{path.relative_to(ROOT)} quotes numbers that differ from bench/results: run `poe docs-numbers`"
    )


def test_readme_quotes_its_measured_numbers_through_spans():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = {spec.split(":")[0] for spec in spans(readme)}
    assert {"main_job.json", "api_load.json", "evaluate_retrieval_rag_blogs_rerank.json"} <= quoted


@pytest.fixture
def results(tmp_path):
    data = {
        "wall_s": 1334,
        "runs": [{"p50_s": 4.512, "name": "a b"}],
        "hit@5": 0.98551,
        "at": "2026-12-07T10:00",
        "m": {"voice.ppl": 13.19, "b:dense": 0.5},
    }
    (tmp_path / "r.json").write_text(json.dumps(data), encoding="utf-8")
    return Results(tmp_path)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("r.json:wall_s:,", "1,334"),
        ("r.json:wall_s:.0f:/60", "22"),
        ("r.json:runs.0.p50_s:.1f", "4.5"),
        ("r.json:runs.0.name", "a b"),
        ("r.json:hit@5:.3f", "0.986"),
        ("r.json:hit@5:.1%", "98.6%"),
        ("r.json:at:.10", "2026-12-07"),
        ("r.json:m.voice.ppl:.1f", "13.2"),
        ("r.json:m.b:dense:.2f", "0.50"),
        ("r.json:m.b:dense:", "0.5"),
        ("r.json:wall_s::/2", "667.0"),
    ],
)
def test_a_span_renders_its_value(results, spec, expected):
    text = f"took <!-- num:{spec} -->old<!-- /num --> here"
    assert render(text, results) == f"took <!-- num:{spec} -->{expected}<!-- /num --> here"


@pytest.mark.parametrize(
    "spec",
    [
        "missing.json:wall_s",
        "r.json:nope",
        "r.json:runs.3.p50_s",
        "r.json:runs",
        "r.json:at:.1f",
        "r.json",
        "../r.json:x",
    ],
)
def test_a_broken_span_is_an_error_naming_where_it_is(results, spec):
    with pytest.raises(SpanError, match=r"README.md:2: "):
        render(f"line 1\n<!-- num:{spec} -->1<!-- /num -->\n", results, "README.md")


def test_the_generator_rewrites_only_stale_files(tmp_path):
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    (tmp_path / "bench" / "results" / "x.json").write_text('{"n": 2.5}', encoding="utf-8")
    (tmp_path / "README.md").write_text("n=<!-- num:x.json:n:.1f -->2.5<!-- /num -->\n", encoding="utf-8")
    (tmp_path / "docs" / "a.md").write_text("n=<!-- num:x.json:n -->9<!-- /num -->\n", encoding="utf-8")
    assert docs_numbers.stale_files(tmp_path) == [tmp_path / "docs" / "a.md"]
    assert docs_numbers.stale_files(tmp_path, write=True) == [tmp_path / "docs" / "a.md"]
    assert (tmp_path / "docs" / "a.md").read_text(encoding="utf-8") == "n=<!-- num:x.json:n -->2.5<!-- /num -->\n"
    assert docs_numbers.stale_files(tmp_path) == []


def test_env_example_is_generated_from_settings():
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == env_example.render(), (
        ".env.example is stale: run `poe env-example`"
    )


def test_env_example_names_every_setting_with_a_meaning():
    from llm_engineering.settings import Settings

    text = env_example.render()
    for name, field in Settings.model_fields.items():
        assert f"\n# {name.upper()}=" in text
        assert field.description, f"Settings.{name} needs a description (it is its line in .env.example)"


def test_the_main_job_writes_every_key_the_docs_quote_from_main_job_json(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tools import demo

    monkeypatch.setattr(demo, "PROJECT_ROOT", tmp_path)
    watch = demo._Stopwatch()
    for number, key in enumerate(demo.STAGE_KEYS, start=1):
        watch.step(number, key, key)
    report = SimpleNamespace(
        timings_s={"sft": 331.0, "dpo": 265.0},
        metrics=lambda: {"sft/global_step": 40, "dpo/global_step": 20, "sft/eval_loss": 3.75},
    )
    summary = {model: dict.fromkeys(demo.EVALUATION_KEYS, 0.5) for model in ("base", "twin")}
    evaluation = {"summary": summary, "promoted": False, "deciding_rule": "all", "gate_reason": "every rule passed",
                  "answered": 8}  # the keys demo._evaluate writes  # fmt: skip
    facts = {"finished": True, "training": demo._training_facts(report), "datasets": {"extracts": 3},
             "evaluation": evaluation}  # fmt: skip
    from llm_engineering.settings import Settings

    results = demo._write_results(Settings(data_dir=tmp_path / "data"), watch, facts, "evaluation", True)
    assert json.loads((tmp_path / "bench" / "results" / "main_job.json").read_text(encoding="utf-8")) == results
    assert (tmp_path / "data" / "main_job.json").is_file()
    recorded = Results(tmp_path / "bench" / "results")
    for path in docs_numbers.doc_files():
        for spec in spans(path.read_text(encoding="utf-8")):
            if spec.startswith("main_job.json:"):
                docs_numbers.render_spec(spec, recorded)  # raises SpanError when a quoted key is not written
