"""Retrieval evaluation: hit@1/5/10 and MRR@10 per mode (dense, sparse, hybrid, hybrid+rerank when configured),
overall and per question kind, plus the author filter actually applied.

python -m tools.evaluate_retrieval --qa data/sample/qa.jsonl --k 10 --output data/local/eval/retrieval.json
Writes the metrics JSON and a per-question CSV beside it (gold author, applied filter, its source, outcome).
By default each question is searched as a user would send it to /search: the search service resolves the
author filter from the question; `--author-from qa` requests each item's gold author explicitly instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tools._cli import bootstrap, check_input_file, check_output_path, run_cli


def machine_facts(container: Any) -> dict[str, Any]:
    """What the numbers ran on: CPU and its AVX2 / bf16 / AMX flags, torch threads, the models' dtypes."""
    import os
    import platform

    import torch

    from llm_engineering.infrastructure.ml.training.backends import cpu_flags

    scorer = getattr(container.reranker, "scorer", None)  # the query-likelihood reranker's LM (None otherwise)
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "simd": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        "torch_threads": torch.get_num_threads(),
        "embedding_dtype": str(next(container.embedder.model.parameters()).dtype).removeprefix("torch."),
        "reranker_dtype": scorer.dtype_name if scorer is not None else None,
    }


@click.command()
@click.option("--qa", "qa_path", required=True, type=click.Path(path_type=Path), help="QA set (JSONL).")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Metrics JSON (CSV goes beside it).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["dense", "sparse", "hybrid", "rerank"]))
@click.option(
    "--author-from",
    default="question",
    show_default=True,
    type=click.Choice(["question", "qa"]),
    help="question: the service resolves the author filter from the question text (as /search and /rag do); "
    "qa: request each item's gold `author` explicitly (an oracle filter).",
)
@click.option("--verbose", is_flag=True)
def main(qa_path: Path, k: int, output: Path, modes: tuple[str, ...], author_from: str, verbose: bool) -> None:
    settings = bootstrap(verbose)
    from llm_engineering.application.evaluation.retrieval import evaluate_retrieval, load_qa, write_evaluation
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.wiring import get_container

    try:
        # Inputs and the output path are checked before the (minutes-long) evaluation starts.
        check_output_path(output, "--output")
        items = load_qa(check_input_file(qa_path, "QA file"))
        container = get_container(settings)
        if not container.feature_store.exists():
            raise click.ClickException("the feature store is empty: run `poe run-feature-engineering-pipeline` first")
        chosen = list(modes) or container.retriever().available_modes()
        # The search service resolves the author filter from each question, as /search and /rag do.
        evaluation = evaluate_retrieval(
            container.search_service, items, k=k, modes=chosen, author_from=author_from, show_progress=True
        )
        reranker = container.reranker
        evaluation.metadata = {
            "qa": str(qa_path),
            "embedding_model": settings.embedding_model_id,
            "reranker": reranker.model_id if reranker else "none (fused hybrid ranking)",
            "rerank": {"documents": settings.rerank_documents, "fusion": settings.effective_rerank_fusion}
            if reranker
            else None,
            "machine": machine_facts(container),
        }
        json_path, csv_path = write_evaluation(evaluation, output)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    metric_names = [name for name in next(iter(evaluation.overall.values())) if name != "questions"]
    click.echo(f"\n{len(items)} questions, k={k}")
    click.echo(f"  {'mode':<14}" + "".join(f"{m:>10}" for m in metric_names))
    for mode, values in evaluation.overall.items():
        label = "hybrid+rerank" if mode == "rerank" else mode
        click.echo(f"  {label:<14}" + "".join(f"{values[m]:>10.3f}" for m in metric_names))
    click.echo(f"\n  {'kind':<12}" + "".join(f"{mode:>10}" for mode in evaluation.modes) + f"   (MRR@{k})")
    for kind, per_mode in evaluation.per_kind.items():
        click.echo(f"  {kind:<12}" + "".join(f"{per_mode[mode][f'mrr@{k}']:>10.3f}" for mode in evaluation.modes))
    click.echo(f"\nauthor filter (resolved from the {'question' if author_from == 'question' else 'QA item'}):")
    for group, summary in evaluation.author_filter.items():
        if summary["author_named"] or summary["unexpected"]:
            click.echo(
                f"  {group:<12} {summary['applied_correctly']:.0f}/{summary['author_named']:.0f} author-named "
                f"questions filtered correctly ({summary['share_correct']:.1%}); wrong author "
                f"{summary['wrong_author']:.0f}, missing {summary['missing']:.0f}, "
                f"unexpected {summary['unexpected']:.0f}"
            )
    click.echo(f"\nmetrics: {json_path}\nper question: {csv_path}")


if __name__ == "__main__":
    run_cli(main)
