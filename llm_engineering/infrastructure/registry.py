"""The model registry: merged checkpoints on the filesystem, mirrored as ZenML Model Control Plane versions.

Layout (`models_dir` = `DATA_DIR/models`):

    models/llm-twin/
      latest                  text file naming the newest version ("v0003"), replaced atomically
      production              (optional) the version promoted by evaluation, same format
      history.jsonl           audit trail: one line per promotion or rollback (who, what, when, why, metrics)
      v0003/                  the twin: a standalone HF checkpoint (DPO merged; SFT merged if DPO was off)
        config.json  model.safetensors  tokenizer*  chat_template.jinja  generation_config.json
        README.md             model card: base model, dataset version + hash, hyperparameters, metrics
        manifest.json         everything about the version (paths relative, metrics, config, lineage)
        training/             sft_log_history.json, dpo_log_history.json (loss curves), reports
        sft/                  the SFT-only merged checkpoint (for base vs SFT vs DPO comparisons)

A version is assembled in `models/llm-twin/.staging-<id>/` and renamed into place in one step, then `latest`
is rewritten (temp file + os.replace): a run that fails registers nothing, and readers never see half a
version. Pointers are plain text so the tree can be copied anywhere (no symlinks to break).

Specs understood by `resolve_registered_model`: `llm-twin` (latest), `llm-twin:latest`, `llm-twin:production`,
`llm-twin:v0003` (or `llm-twin:3`), and the same with `llm-twin-sft` for the SFT stage.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel

from llm_engineering.application.jsonl import read_append_log
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.artifacts import STAGING_PREFIX, VersionedArtifactStore

DEFAULT_MODEL_NAME = "llm-twin"
SFT_SUFFIX = "-sft"
SFT_DIRNAME = "sft"
TRAINING_DIRNAME = "training"
MANIFEST_NAME = "manifest.json"
HISTORY_NAME = "history.jsonl"
LATEST_POINTER = "latest"
STAGE_POINTERS = ("latest", "production", "staging")
_SPEC = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*)(?::(?P<version>[A-Za-z0-9._-]+))?$")


class RegisteredVersion(BaseModel):
    name: str
    version: str
    path: str
    sft_path: str | None
    created_at: str
    manifest: dict[str, Any]


def registry_dir(models_dir: Path, name: str = DEFAULT_MODEL_NAME) -> Path:
    return Path(models_dir) / name


def _is_complete(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_NAME).is_file() and (path / "config.json").is_file()


def registry_store(models_dir: Path, name: str = DEFAULT_MODEL_NAME) -> VersionedArtifactStore:
    """The versioned-artifact store holding one registered model's versions (v0001 …) and its aliases."""
    return VersionedArtifactStore(
        registry_dir(models_dir, name), naming="sequence", width=4, is_complete=_is_complete, kind="model"
    )


def list_versions(models_dir: Path, name: str = DEFAULT_MODEL_NAME) -> list[str]:
    """Complete versions, oldest first."""
    return registry_store(models_dir, name).versions()


def read_pointer(models_dir: Path, name: str = DEFAULT_MODEL_NAME, pointer: str = LATEST_POINTER) -> str | None:
    """The version a pointer (`latest`, `production`) names: a text file, or a symlink to a version dir."""
    return registry_store(models_dir, name).read_alias(pointer)


def latest_version(models_dir: Path, name: str = DEFAULT_MODEL_NAME) -> str | None:
    """What `latest` names, else the newest complete version, else None."""
    return registry_store(models_dir, name).latest()


def write_pointer(models_dir: Path, name: str, version: str, pointer: str = LATEST_POINTER) -> None:
    """Point `pointer` at `version` atomically (write a temp file, then os.replace)."""
    if pointer not in STAGE_POINTERS:
        raise ConfigurationError(f"unknown registry pointer {pointer!r}; use one of {', '.join(STAGE_POINTERS)}")
    store = registry_store(models_dir, name)
    if not _is_complete(store.path(version)):
        raise ConfigurationError(f"{name}:{version} is not a registered version ({_available(models_dir, name)})")
    store.set_alias(pointer, version)


def promote(
    models_dir: Path,
    version: str,
    name: str = DEFAULT_MODEL_NAME,
    stage: str = "production",
    *,
    action: str = "promote",
    actor: str = "",
    reason: str = "",
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mark `version` as `stage` (evaluation promotes a twin that beats production; a rollback points production back
    at an earlier version) and append the change to the registry's audit trail (`history.jsonl`). Returns the
    audit record."""
    previous = read_pointer(models_dir, name, stage)
    write_pointer(models_dir, name, version, stage)
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": action,
        "model": name,
        "stage": stage,
        "version": version,
        "previous": previous,
        "actor": actor or _default_actor(),
        "reason": reason,
        "metrics": metrics or {},
    }
    history = registry_dir(models_dir, name) / HISTORY_NAME
    # One line per change, appended with a single write: readers never see half a record.
    with history.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
    return record


def promotion_history(models_dir: Path, name: str = DEFAULT_MODEL_NAME) -> list[dict[str, Any]]:
    """Every promotion and rollback of `name`, oldest first (a torn last line from a killed writer is skipped)."""
    return read_append_log(registry_dir(models_dir, name) / HISTORY_NAME)


def _default_actor() -> str:
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{os.uname().nodename}"


def _write_json(path: Path, data: Any) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temp, path)


def register_version(
    models_dir: Path,
    *,
    twin_dir: Path,
    sft_dir: Path | None,
    manifest: dict[str, Any],
    training_files: dict[str, Any] | None = None,
    name: str = DEFAULT_MODEL_NAME,
) -> RegisteredVersion:
    """Move the merged checkpoints into a new version and point `latest` at it.

    `twin_dir` becomes the version dir itself (vLLM serves it as is); `sft_dir`, when given, becomes its `sft/`
    subfolder. `training_files` ({file name: JSON-able}) go to `training/`. Nothing is visible under a version
    name until everything is in place (the artifact store's staging folder + one rename).
    """
    twin_dir = Path(twin_dir)
    if not (twin_dir / "config.json").is_file():
        raise ConfigurationError(f"{twin_dir} is not a merged checkpoint (config.json missing): nothing registered")
    if sft_dir is not None and not (Path(sft_dir) / "config.json").is_file():
        raise ConfigurationError(f"{sft_dir} is not a merged checkpoint (config.json missing): nothing registered")
    store = registry_store(models_dir, name)
    store.root.mkdir(parents=True, exist_ok=True)
    staging = store.root / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        shutil.move(str(twin_dir), str(staging))
        if sft_dir is not None:
            shutil.move(str(sft_dir), str(staging / SFT_DIRNAME))
        (staging / TRAINING_DIRNAME).mkdir(exist_ok=True)
        for file_name, content in (training_files or {}).items():
            _write_json(staging / TRAINING_DIRNAME / file_name, content)
        for _attempt in range(20):
            version = store.next_version()
            full_manifest = {
                "name": name,
                "version": version,
                "created_at": created_at,
                "sft_path": SFT_DIRNAME if sft_dir is not None else None,
                **manifest,
            }
            _write_json(staging / MANIFEST_NAME, full_manifest)
            try:
                store.commit(staging, version, alias=None)  # atomic; fails if a concurrent run took the name
                break
            except OSError:
                if store.path(version).exists():
                    continue
                raise
        else:  # pragma: no cover - 20 concurrent registrations
            raise RuntimeError(f"could not allocate a version name under {store.root}")
    except BaseException:
        # Give the checkpoints back to the run dir where possible, so a retry can register them; never leave staging.
        if staging.exists():
            if sft_dir is not None and (staging / SFT_DIRNAME).exists() and not Path(sft_dir).exists():
                shutil.move(str(staging / SFT_DIRNAME), str(sft_dir))
            if not twin_dir.exists():
                shutil.move(str(staging), str(twin_dir))
            else:
                shutil.rmtree(staging, ignore_errors=True)
        raise
    write_pointer(models_dir, name, version, LATEST_POINTER)
    path = store.path(version)
    logger.info(f"Registered {name}:{version} at {path}")
    return RegisteredVersion(
        name=name,
        version=version,
        path=str(path),
        sft_path=str(path / SFT_DIRNAME) if sft_dir is not None else None,
        created_at=created_at,
        manifest=full_manifest,
    )


def read_manifest(models_dir: Path, version: str, name: str = DEFAULT_MODEL_NAME) -> dict[str, Any]:
    path = registry_dir(models_dir, name) / version / MANIFEST_NAME
    if not path.is_file():
        raise ConfigurationError(f"{name}:{version} is not a registered version ({_available(models_dir, name)})")
    return json.loads(path.read_text(encoding="utf-8"))


def update_manifest(models_dir: Path, version: str, updates: dict[str, Any], name: str = DEFAULT_MODEL_NAME) -> None:
    manifest = read_manifest(models_dir, version, name)
    manifest.update(updates)
    _write_json(registry_dir(models_dir, name) / version / MANIFEST_NAME, manifest)


def _available(models_dir: Path, name: str) -> str:
    versions = list_versions(models_dir, name)
    if not versions:
        return f"no version of {name} is registered yet: run `poe run-training-pipeline --config configs/training.yaml`"
    pointers = {p: read_pointer(models_dir, name, p) for p in STAGE_POINTERS}
    named = ", ".join(f"{p}={v}" for p, v in pointers.items() if v)
    return f"available: {', '.join(versions)}" + (f" ({named})" if named else "")


def parse_model_spec(spec: str) -> tuple[str, str | None] | None:
    """`name[:version]` -> (name, version) when it can be a registry spec (not a path or a hub id)."""
    match = _SPEC.match(spec.strip())
    if not match:
        return None
    return match.group("name"), match.group("version")


def is_registered_model_spec(models_dir: Path, spec: str, default_name: str = DEFAULT_MODEL_NAME) -> bool:
    """True when `spec` names the registry (`llm-twin`, `llm-twin-sft`, or any name with a registry dir)."""
    parsed = parse_model_spec(spec)
    if parsed is None:
        return False
    name = parsed[0]
    base = name.removesuffix(SFT_SUFFIX)
    return name in (default_name, default_name + SFT_SUFFIX) or registry_dir(models_dir, base).is_dir()


def resolve_registered_model(models_dir: str | Path, spec: str) -> Path:
    """Map a registry spec to a checkpoint dir vLLM/transformers can load.

    `llm-twin` -> latest twin; `llm-twin:v0003` / `:3` / `:latest` / `:production` -> that version;
    `llm-twin-sft[:...]` -> the SFT stage of that version. Raises ConfigurationError listing what exists.
    """
    models_dir = Path(models_dir)
    parsed = parse_model_spec(spec)
    if parsed is None:
        raise ConfigurationError(f"{spec!r} is not a registry model spec (expected e.g. llm-twin or llm-twin:v0001)")
    name, version = parsed
    stage = "twin"
    if not registry_dir(models_dir, name).is_dir() and name.endswith(SFT_SUFFIX):
        name, stage = name.removesuffix(SFT_SUFFIX), "sft"
    if not list_versions(models_dir, name):
        raise ConfigurationError(f"model {spec!r}: {_available(models_dir, name)}")
    if version is None or version in STAGE_POINTERS:
        pointer = version or LATEST_POINTER
        resolved = (
            latest_version(models_dir, name) if pointer == LATEST_POINTER else read_pointer(models_dir, name, pointer)
        )
        if resolved is None:
            raise ConfigurationError(f"model {spec!r}: no version is marked {pointer}; {_available(models_dir, name)}")
        version = resolved
    elif version.isdigit():
        version = f"v{int(version):04d}"
    path = registry_dir(models_dir, name) / version
    if not _is_complete(path):
        raise ConfigurationError(f"model {spec!r}: {name}:{version} does not exist; {_available(models_dir, name)}")
    if stage == "sft":
        manifest = read_manifest(models_dir, version, name)
        if manifest.get("sft_path"):
            path = path / manifest["sft_path"]
        elif manifest.get("stages") != ["sft"]:
            raise ConfigurationError(f"model {spec!r}: {name}:{version} has no SFT stage checkpoint")
    return path.resolve()


def registered_model_info(models_dir: str | Path, spec: str) -> dict[str, Any]:
    """What a spec serves, for "which model answered": name, version, stage, path, dataset version, created_at."""
    models_dir = Path(models_dir)
    path = resolve_registered_model(models_dir, spec)
    name, _ = parse_model_spec(spec) or (spec, None)
    stage = (
        "sft"
        if path.name == SFT_DIRNAME or (name.endswith(SFT_SUFFIX) and not registry_dir(models_dir, name).is_dir())
        else "twin"
    )
    version_dir = path.parent if path.name == SFT_DIRNAME else path
    manifest = json.loads((version_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    return {
        "name": manifest.get("name", name.removesuffix(SFT_SUFFIX)),
        "version": version_dir.name,
        "stage": stage,
        "path": str(path),
        "dataset_version": (manifest.get("dataset") or {}).get("version"),
        "created_at": manifest.get("created_at"),
    }


def _free_version_name(client: Any, model_name: str, wanted: str, model_version: Any) -> str:
    """`wanted` (the registry version), or `wanted-<ZenML number>` when another version already has that name:
    one ZenML store can serve several DATA_DIRs, each with its own registry counting from v0001."""
    try:
        holder = client.get_model_version(model_name, wanted)
    except Exception:  # KeyError: the name is free; any other failure: try it, the caller logs what fails
        return wanted
    if holder.id == model_version.id:
        return wanted
    name = f"{wanted}-{model_version.number}"
    logger.warning(
        f"ZenML model {model_name!r} already has a version named {wanted!r} (another DATA_DIR's registry); "
        f"this one is named {name!r} and tagged {wanted!r}"
    )
    return name


def register_in_zenml(version: RegisteredVersion, metadata: dict[str, Any]) -> dict[str, Any] | None:
    """Attach this registry version to the ZenML Model Control Plane version of the running pipeline step.

    The `training` pipeline is configured with `Model(name="llm-twin")`, so ZenML creates one model version per
    run and links the run and every step artifact (dataset summary, stage results, report) to it. Here it gets
    the metrics, dataset version/hash, hyperparameters and the checkpoint path as metadata, a tag with the
    registry version, and the registry version as its name. Outside a pipeline step, returns None.
    """
    try:
        from zenml import get_step_context, log_metadata
        from zenml.client import Client
    except ImportError:  # pragma: no cover - zenml is a core dependency
        return None
    try:
        context = get_step_context()
        model = context.model
    except Exception:  # not inside a step, or the pipeline has no model configured
        return None
    log_metadata(metadata=metadata, infer_model=True)
    model_version = model.get_model_version() if hasattr(model, "get_model_version") else None
    info: dict[str, Any] = {"model": model.name, "version_id": str(model.id) if model.id else None}
    try:
        client = Client()
        mv = model_version or client.get_model_version(model.name, model.id)
        info["number"] = mv.number
        name = _free_version_name(client, model.name, version.version, mv)
        client.update_model_version(
            model_name_or_id=model.name,
            version_name_or_id=mv.id,
            name=name,
            add_tags=[version.version, f"dataset:{metadata.get('dataset_version', '?')}"],
        )
        info["name"] = name
    except Exception as exc:  # naming/tagging is cosmetic: keep the metadata even if it fails
        logger.warning(f"ZenML model version naming failed ({exc}); metadata is attached anyway")
    return info
