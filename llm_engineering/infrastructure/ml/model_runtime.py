"""What the evaluation needs from the model side: which checkpoints `base`, `sft`, `twin` are; serving one of them
with vLLM for the duration of its generations; the judge endpoint; the twin's training curves; promotion in the
filesystem registry and in ZenML's Model Control Plane.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from loguru import logger

from llm_engineering.application.evaluation.config import EvaluationConfig
from llm_engineering.application.evaluation.results import JudgeEndpoint, ModelUnderTest, PromotionDecision
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.registry import (
    DEFAULT_MODEL_NAME,
    SFT_SUFFIX,
    is_registered_model_spec,
    list_versions,
    promote,
    read_manifest,
    read_pointer,
    resolve_registered_model,
)
from llm_engineering.settings import Settings

ALIASES = {
    "twin": DEFAULT_MODEL_NAME,
    "sft": DEFAULT_MODEL_NAME + SFT_SUFFIX,
    "production": f"{DEFAULT_MODEL_NAME}:production",
}
WEAK_JUDGE_WARNING = (
    "The judge is the local serving model ({model}): a 135M-parameter judge is weak — its scores and Ragas' LLM "
    "metrics are close to noise (it often loops or answers A every time; see the agreement rate). Set "
    "JUDGE_BASE_URL / JUDGE_MODEL_ID (+ JUDGE_API_KEY) to a strong OpenAI-compatible model for meaningful verdicts."
)


def _registry_of(settings: Settings, spec: str, path: Path) -> tuple[str | None, str | None]:
    """(registry name, version) when `path` is a registry version (the twin, or its SFT stage)."""
    models_dir = Path(settings.models_dir).resolve()
    try:
        relative = path.resolve().relative_to(models_dir)
    except ValueError:
        return None, None
    parts = relative.parts
    if len(parts) >= 2 and (models_dir / parts[0] / parts[1] / "manifest.json").is_file():
        name = parts[0] + (SFT_SUFFIX if len(parts) > 2 else "")
        return name, parts[1]
    return None, None


def manifest_of(path: str | Path) -> dict[str, Any] | None:
    """The registry manifest of a checkpoint folder (a version dir, or its `sft/` stage), else None."""
    path = Path(path)
    for folder in (path, path.parent):
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                return json.loads(manifest.read_text(encoding="utf-8"))
            except ValueError:
                return None
    return None


def _with_generation(model: ModelUnderTest) -> ModelUnderTest:
    """The model with its version's generation defaults (the domain defaults for a plain checkpoint)."""
    from llm_engineering.domain.generation import generation_defaults

    defaults = generation_defaults(manifest_of(model.path) if model.registry_version else None)
    return model.model_copy(update={"generation": defaults.model_dump(mode="json")})


def resolve_model(settings: Settings, spec: str) -> ModelUnderTest:
    """`base` | `sft` | `twin` | `production` | a registry spec | a checkpoint folder (see `_resolve_model`), with
    the generation defaults it is served with."""
    return _with_generation(_resolve_model(settings, spec))


def _resolve_model(settings: Settings, spec: str) -> ModelUnderTest:
    """`base` | `sft` | `twin` | `production` | a registry spec (`llm-twin:v0002`, `llm-twin-sft:3`) | a checkpoint
    folder, optionally labelled `label=spec`. A model that does not exist is a ConfigurationError naming what does."""
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS, prepare_packaged_model

    spec = spec.strip()
    label, _, target = spec.partition("=") if "=" in spec else (spec, "", spec)
    label, target = label.strip(), target.strip()
    if not target:
        raise ConfigurationError(f"model {spec!r}: empty")
    if target in ("base", PACKAGED_MODEL_ALIAS):
        base = _base_model_path(settings)
        path = Path(base) if base else prepare_packaged_model(settings)
        return ModelUnderTest(name=label, spec=target, path=str(path))
    local = Path(target).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ConfigurationError(f"model {spec!r}: {local} is not a checkpoint folder (config.json missing)")
        name, version = _registry_of(settings, target, local)
        return ModelUnderTest(
            name=label, spec=target, path=str(local.resolve()), registry_name=name, registry_version=version
        )
    registry_spec = ALIASES.get(target, target)
    if not is_registered_model_spec(settings.models_dir, registry_spec):
        raise ConfigurationError(
            f"model {spec!r} not found: use base, sft, twin, production, a registry spec (llm-twin:v0001) or a "
            "checkpoint folder"
        )
    path = resolve_registered_model(settings.models_dir, registry_spec)  # raises, listing what exists
    name, version = _registry_of(settings, registry_spec, path)
    return ModelUnderTest(name=label, spec=target, path=str(path), registry_name=name, registry_version=version)


def _base_model_path(settings: Settings) -> str | None:
    """The twin's own base checkpoint (from its manifest) when it still exists; else None (the packaged one)."""
    versions = list_versions(settings.models_dir)
    if not versions:
        return None
    latest = read_pointer(settings.models_dir, DEFAULT_MODEL_NAME) or versions[-1]
    base = read_manifest(settings.models_dir, latest).get("base_model_path")
    # A twin continued from an earlier version (the refresh's continue mode) names that version as its base: follow
    # the chain down to the model the first version was trained from, which is what "base" means to the gate.
    registry = (Path(settings.models_dir) / DEFAULT_MODEL_NAME).resolve()
    for _ in range(len(versions)):
        if not base or Path(base).resolve().parent != registry or not (Path(base) / "manifest.json").is_file():
            break
        base = json.loads((Path(base) / "manifest.json").read_text(encoding="utf-8")).get("base_model_path")
    return base if base and (Path(base) / "config.json").is_file() else None


def resolve_models(settings: Settings, specs: list[str], reference: str = "base") -> list[ModelUnderTest]:
    """Resolve every requested model (errors name the missing one); the DPO reference (base) is added for the
    judge-free metrics when it was not requested."""
    models = [resolve_model(settings, spec) for spec in specs]
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"two models share the label(s) {duplicates}: label them, e.g. `mine=path/to/ckpt`")
    if reference not in names:
        extra = resolve_model(settings, reference if reference != "base" else "base")
        models.append(extra.model_copy(update={"voice_only": True}))
    return models


def production_model(settings: Settings, name: str = DEFAULT_MODEL_NAME) -> ModelUnderTest | None:
    version = read_pointer(settings.models_dir, name, "production")
    if version is None:
        return None
    path = resolve_registered_model(settings.models_dir, f"{name}:{version}")
    return _with_generation(
        ModelUnderTest(
            name="production", spec=f"{name}:production", path=str(path), registry_name=name, registry_version=version
        )
    )


def with_production(settings: Settings, models: list[ModelUnderTest], candidate: str) -> list[ModelUnderTest]:
    """Add the current production version (judge-free metrics only) when it is not the candidate itself and was
    not asked for: promotion compares the candidate with it on the same data."""
    production = production_model(settings)
    if production is None or any(m.name == "production" for m in models):
        return models
    twin = next((m for m in models if m.name == candidate), None)
    if (
        twin is not None
        and twin.registry_version == production.registry_version
        and twin.registry_name == (production.registry_name)
    ):
        return models
    return [*models, production.model_copy(update={"voice_only": True})]


@contextmanager
def served_model(
    settings: Settings,
    model: ModelUnderTest,
    port: int | None,
    client_factory: Callable[..., Any],
    startup_timeout_s: float | None = None,
) -> Iterator[Any]:
    """A vLLM server for this checkpoint on its own loopback port (its pid and log under
    DATA_DIR/evaluation/servers/<label>), an LLM client for it, and the server stopped afterwards."""
    from llm_engineering.infrastructure.local_services import find_free_port
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server, stop_llm_server

    port = port or find_free_port()
    server_settings = settings.model_copy(
        update={
            "data_dir": Path(settings.data_dir) / "evaluation" / "servers" / model.name,
            "llm_model_id": model.path,
            "llm_base_url": f"http://127.0.0.1:{port}/v1",
            "llm_server_startup_timeout_s": max(settings.llm_server_startup_timeout_s, startup_timeout_s or 0),
        }
    )
    Path(server_settings.data_dir).mkdir(parents=True, exist_ok=True)
    logger.info(f"evaluation: serving {model.name} ({model.path}) with vLLM on port {port}")
    started = start_llm_server(server_settings)
    client = client_factory(base_url=server_settings.llm_base_url, model=model.path)
    try:
        yield client
    finally:
        if started:
            stop_llm_server(server_settings)


@contextmanager
def judge_endpoint(
    settings: Settings, client_factory: Callable[..., Any], start_local: bool
) -> Iterator[JudgeEndpoint]:
    """JUDGE_BASE_URL / JUDGE_MODEL_ID, else the serving LLM (started for the run when it is local, down and
    `start_local`), with the weak-judge warning for the packaged 135M model."""
    from llm_engineering.infrastructure.ml.inference_engine import (
        is_local_endpoint,
        models_endpoint_ready,
        start_llm_server,
        stop_llm_server,
    )
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS

    api_key = settings.judge_api_key.get_secret_value() if settings.judge_api_key else None
    if settings.judge_base_url:
        base_url, model = settings.judge_base_url, settings.judge_model_id or settings.llm_model_id
        client = client_factory(base_url=base_url, model=model, api_key=api_key)
        warning = WEAK_JUDGE_WARNING.format(model=model) if model == PACKAGED_MODEL_ALIAS else ""
        yield JudgeEndpoint(llm=client, base_url=base_url, model=model, warning=warning)
        return
    base_url = settings.llm_base_url
    model = settings.judge_model_id or settings.llm_model_id
    small = model == PACKAGED_MODEL_ALIAS or "135m" in model.lower() or "smollm" in model.lower()
    warning = (
        WEAK_JUDGE_WARNING.format(model=model)
        if small
        else (
            f"The judge is the local serving model ({model}); set JUDGE_BASE_URL / JUDGE_MODEL_ID for a stronger one."
        )
    )
    logger.warning(warning)
    started = False
    try:
        if not models_endpoint_ready(settings) and is_local_endpoint(settings):
            if not start_local:
                yield JudgeEndpoint(
                    base_url=base_url,
                    model=model,
                    warning=warning,
                    reason=f"no judge: nothing answers at {base_url} (start it with `poe run-llm-server`, or set "
                    "JUDGE_BASE_URL)",
                )
                return
            try:
                started = start_llm_server(settings)
            except Exception as exc:
                yield JudgeEndpoint(base_url=base_url, model=model, warning=warning, reason=f"judge not started: {exc}")
                return
        client = client_factory(base_url=base_url, model=settings.llm_model_id, api_key=api_key)
        yield JudgeEndpoint(llm=client, base_url=base_url, model=model, warning=warning)
    finally:
        if started:
            stop_llm_server(settings)


def training_curves(model: ModelUnderTest | None) -> dict[str, Any]:
    """The loss curves (`training/<stage>_log_history.json`) and final metrics of a registry version."""
    if model is None:
        return {}
    path = Path(model.path)
    root = path if (path / "manifest.json").is_file() else path.parent
    curves: dict[str, list[dict[str, Any]]] = {}
    for stage in ("sft", "dpo"):
        history = root / "training" / f"{stage}_log_history.json"
        if history.is_file():
            try:
                curves[stage] = json.loads(history.read_text(encoding="utf-8"))
            except ValueError:
                continue
    final: dict[str, Any] = {}
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            final = json.loads(manifest.read_text(encoding="utf-8")).get("metrics", {})
        except ValueError:
            final = {}
    return {"version": model.registry_version or "", "curves": curves, "final": final} if curves or final else {}


def apply_promotion(settings: Settings, decision: PromotionDecision, registry_name: str | None) -> PromotionDecision:
    """Mark the candidate version `production` in the filesystem registry and in ZenML's Model Control Plane."""
    if not decision.promote or not decision.candidate_version:
        return decision
    name = registry_name or DEFAULT_MODEL_NAME
    if name.endswith(SFT_SUFFIX):  # an SFT stage lives inside its twin version: promote nothing by accident
        decision.reason += f"; {name} is an SFT stage, not a registry version: not promoted"
        decision.promote = False
        return decision
    metrics = {
        f"{rule.get('rule')} vs {rule.get('baseline')}": {
            "candidate": rule.get("candidate"),
            "baseline": rule.get("baseline_value"),
        }
        for rule in decision.rules
    }
    metrics[decision.metric or "metric"] = {"candidate": decision.candidate_value, "baseline": decision.baseline_value}
    promote(
        settings.models_dir,
        decision.candidate_version,
        name=name,
        actor="evaluation gate",
        reason=f"{decision.deciding_rule or 'gate'}: {decision.reason}",
        metrics=metrics,
    )
    decision.applied = True
    decision.zenml = zenml_set_stage(name, decision.candidate_version, "production")
    logger.info(f"promoted {name}:{decision.candidate_version} to production ({decision.reason})")
    return decision


def zenml_set_stage(name: str, version: str, stage: str) -> dict[str, Any]:
    try:
        from zenml.client import Client

        client = Client()
        model_version = client.get_model_version(name, version)
        client.update_model_version(model_name_or_id=name, version_name_or_id=model_version.id, stage=stage, force=True)
        return {"model": name, "version": version, "stage": stage}
    except Exception as exc:  # no ZenML version of this name (trained without ZenML): the registry pointer stands
        logger.warning(f"ZenML stage not set for {name}:{version}: {type(exc).__name__}: {exc}")
        return {"model": name, "version": version, "stage": None, "error": f"{type(exc).__name__}: {exc}"[:300]}


def parse_models_option(value: str | None, default: list[str]) -> list[str]:
    if not value:
        return list(default)
    specs = [part.strip() for part in value.split(",") if part.strip()]
    if not specs:
        raise ConfigurationError("--models is empty: e.g. --models base,sft,twin")
    return specs


class LocalModelRuntime:
    """The `ModelRuntime` port on this machine: a transformers scorer per checkpoint, each model served by its
    own vLLM server (or transformers `generate` in-process when no vLLM environment exists), and the judge
    (JUDGE_BASE_URL / JUDGE_MODEL_ID, else the serving LLM). It builds its own OpenAI-compatible clients."""

    def __init__(self, settings: Settings, config: EvaluationConfig) -> None:
        self.settings = settings
        self.config = config
        backend = config.generation.backend
        if backend == "auto":
            backend = "vllm" if Path(settings.vllm_python).exists() else "transformers"
        self.generation_backend = backend

    def _client(self, base_url: str, model: str, api_key: str | None = None) -> Any:
        from llm_engineering.infrastructure.llm.client import LLMClient

        return LLMClient(
            self.settings, base_url=base_url, model=model, api_key=api_key, timeout_s=self.config.generation.timeout_s
        )

    def scorer(self, model: ModelUnderTest) -> Any:
        from llm_engineering.infrastructure.ml.scorer import TransformersScorer

        voice = self.config.voice
        return TransformersScorer(
            model.path, max_length=voice.max_length, batch_size=voice.batch_size, threads=voice.threads
        )

    @contextmanager
    def serve(self, model: ModelUnderTest) -> Iterator[Any]:
        if self.generation_backend == "transformers":
            from llm_engineering.infrastructure.ml.scorer import TransformersChatLLM

            yield TransformersChatLLM(model.path, threads=self.config.voice.threads, served_name=model.name)
            return
        generation = self.config.generation
        with served_model(self.settings, model, generation.port, self._client, generation.startup_timeout_s) as llm:
            yield llm

    def judge(self) -> AbstractContextManager[JudgeEndpoint]:
        return judge_endpoint(self.settings, self._client, start_local=self.config.judge.start_local_server)
