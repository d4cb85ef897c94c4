"""The refresh's own pieces without a pipeline: what counts as new writing, the config's errors, the ledger (only a
completed refresh moves the baseline) and the lock (never two refreshes; a killed holder frees it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from llm_engineering.application.refresh.changes import corpus_changes, fingerprint
from llm_engineering.application.refresh.config import load_refresh_config, parse_refresh_config
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.refresh_ledger import RefreshBusyError, RefreshLedger
from llm_engineering.infrastructure.registry import promote, promotion_history
from llm_engineering.settings import PROJECT_ROOT


def test_changes_against_the_last_completed_refresh():
    first = corpus_changes(None, {"a": "1", "b": "2"}, ["Ada"])
    assert first.first_run and first.proceed and first.new == ["a", "b"] and "first refresh" in first.summary()

    later = corpus_changes({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "9", "d": "4"}, ["Ada"])
    assert (later.new, later.changed, later.removed, later.unchanged) == (["d"], ["b"], ["c"], 1)
    assert later.proceed and later.counts() == {"new": 1, "changed": 1, "removed": 1, "unchanged": 1}

    same = corpus_changes({"a": "1"}, {"a": "1"}, ["Ada"])
    assert not same.has_changes and not same.proceed and same.summary().startswith("nothing new")
    assert corpus_changes({"a": "1"}, {"a": "1"}, ["Ada"], force=True).proceed


def test_fingerprint_flattens_the_snapshot_versions():
    assert fingerprint({"articles": {"a": "1"}, "posts": {"p": "2"}}) == {"a": "1", "p": "2"}


def test_the_shipped_config_parses_and_typos_name_the_key(tmp_path):
    config = load_refresh_config(PROJECT_ROOT / "configs" / "twin_refresh.yaml")
    assert config.training.mode == "retrain" and config.switch_serving
    assert all(path.is_file() for path in config.stage_configs(PROJECT_ROOT).values())

    with pytest.raises(ConfigurationError, match=r"parameters\.switch_servng"):
        parse_refresh_config({"parameters": {"switch_servng": True}}, source="x.yaml")
    with pytest.raises(ConfigurationError, match=r"parameters\.training\.mode"):
        parse_refresh_config({"parameters": {"training": {"mode": "sometimes"}}}, source="x.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: [unclosed\n")
    with pytest.raises(ConfigurationError, match="bad.yaml is not valid YAML"):
        load_refresh_config(bad)


def test_only_a_recorded_refresh_moves_the_baseline(tmp_path):
    ledger = RefreshLedger(tmp_path / "refresh")
    assert ledger.last_fingerprint(["Ada"]) is None
    ledger.record(["Ada"], {"a": "1"}, {"outcome": "promoted"})
    ledger.record(["Bob"], {"b": "1"}, {"outcome": "not_promoted"})
    assert ledger.last_fingerprint(["Ada"]) == {"a": "1"} and ledger.last_fingerprint(["Bob"]) == {"b": "1"}
    with (tmp_path / "refresh" / "runs.jsonl").open("a") as handle:
        handle.write('{"torn": ')  # a writer killed mid-line
    assert [r["outcome"] for r in ledger.runs()] == ["promoted", "not_promoted"]


def test_two_refreshes_never_overlap_and_a_killed_holder_frees_the_lock(tmp_path):
    root = tmp_path / "refresh"
    holder_code = textwrap.dedent(f"""
        import time
        from llm_engineering.infrastructure.refresh_ledger import RefreshLedger
        with RefreshLedger({str(root)!r}).lock():
            print("holding", flush=True)
            time.sleep(600)
    """)
    holder = subprocess.Popen([sys.executable, "-c", holder_code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(RefreshBusyError, match=f"pid {holder.pid}"), RefreshLedger(root).lock():
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: no cleanup code runs
        holder.wait(timeout=30)
    deadline = time.monotonic() + 10
    while True:
        try:
            with RefreshLedger(root).lock():
                break
        except RefreshBusyError:
            assert time.monotonic() < deadline, "the lock of a killed refresh was not released"
            time.sleep(0.1)
    assert json.loads((root / "holder.json").read_text())["pid"] == os.getpid()


def test_promotions_and_rollbacks_are_audited(tmp_path):
    from tests.unit.training.test_registry import register  # a tiny complete version (fake weights)

    models = tmp_path / "models"
    for tag in ("a", "b"):
        register(models, tmp_path, tag)
    first = promote(models, "v0001", actor="evaluation gate", reason="all rules passed", metrics={"ppl": 3.0})
    second = promote(models, "v0002", actor="evaluation gate", reason="all rules passed")
    back = promote(models, "v0001", action="rollback", actor="ops", reason="bad answers")
    assert (first["previous"], second["previous"], back["previous"]) == (None, "v0001", "v0002")
    history = promotion_history(models)
    assert [(h["action"], h["version"]) for h in history] == [("promote", "v0001"), ("promote", "v0002"),
                                                              ("rollback", "v0001")]  # fmt: skip
    assert history[0]["metrics"] == {"ppl": 3.0} and history[2]["actor"] == "ops" and history[2]["at"]


def test_continue_mode_keeps_the_new_writing_and_a_fixed_replay_share():
    from llm_engineering.application.refresh.replay import replay_rows

    rows = [{"document_id": f"d{i % 50}", "instruction": f"q{i}"} for i in range(1000)]
    kept = replay_rows(rows, {"d1", "d2"}, 0.3, seed=42)
    focus = [r for r in kept if r["document_id"] in {"d1", "d2"}]
    others = [r for r in kept if r["document_id"] not in {"d1", "d2"}]
    assert len(focus) == 40  # every row of the new documents
    assert 0.25 < len(others) / 960 < 0.35  # about the replay share of the rest
    assert kept == replay_rows(rows, {"d1", "d2"}, 0.3, seed=42)  # a resumed refresh trains on the same rows
    assert replay_rows(rows, set(), 0.0, seed=1) == [] and replay_rows(rows, set(), 1.0, seed=1) == rows


def test_base_means_the_first_versions_base_when_a_twin_was_continued_from_another(tmp_path):
    from llm_engineering.infrastructure.ml.model_runtime import _base_model_path
    from llm_engineering.infrastructure.registry import registry_dir, update_manifest
    from llm_engineering.settings import Settings
    from tests.unit.training.test_registry import fake_checkpoint, register

    settings = Settings(data_dir=tmp_path / "data")
    base = fake_checkpoint(tmp_path / "smollm2", "base")
    first, continued = register(settings.models_dir, tmp_path, "a"), register(settings.models_dir, tmp_path, "b")
    update_manifest(settings.models_dir, first.version, {"base_model_path": str(base)})
    # The refresh's continue mode trains v0002 from v0001: its manifest names v0001 as its base.
    update_manifest(settings.models_dir, continued.version,
                    {"base_model_path": str(registry_dir(settings.models_dir) / first.version)})  # fmt: skip
    assert _base_model_path(settings) == str(base)
