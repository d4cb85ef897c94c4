from typing import Any

from zenml import pipeline

from pipelines.training import TWIN_MODEL
from steps.datasets import build_extracts, generate_samples, load_cleaned_documents, write_datasets
from steps.etl import crawl_links, get_or_create_user, import_archives
from steps.evaluating import (
    evaluate_retrieval_metrics,
    generate_answers,
    judge_answers,
    prepare_evaluation,
    promote_twin,
    score_voice,
    write_evaluation_report,
)
from steps.feature_engineering import chunk_embed_load, clean_documents, plan_features, query_data_warehouse
from steps.refresh import (
    detect_new_writing,
    plan_continued_training,
    record_refresh,
    serve_production,
    start_dataset_llm,
    stop_dataset_llm,
)
from steps.training import prepare_training_run, register_twin, train_dpo, train_sft


@pipeline(dynamic=True, enable_cache=False)
def twin_refresh(
    authors: list[str],
    etl: list[dict[str, Any]],
    features: dict[str, Any],
    datasets: dict[str, Any],
    training: dict[str, Any],
    evaluation: dict[str, Any],
    dataset_llm: str,
    training_mode: dict[str, Any] | None = None,
    switch_serving: bool = True,
    production_before: str | None = None,
    max_steps: int | None = None,
    force: bool = False,
) -> None:
    """New writing -> features (incremental) -> nothing new? stop -> datasets (cached generations re-used) ->
    SFT + DPO -> register -> evaluation against production and the base -> gate -> serving switch -> ledger.

    The steps are the ETL, feature, dataset, training and evaluation pipelines' own; a dynamic pipeline so that a
    refresh with nothing new ends after the features step instead of running no-op steps."""
    for source in etl:
        user = get_or_create_user(source["user_full_name"])
        if source.get("sources"):
            import_archives(user=user, sources=source["sources"], links=source.get("links") or [])
        if source.get("links"):
            crawl_links(user=user, links=source["links"])

    chunking = features.get("chunking")
    snapshot = query_data_warehouse(features.get("author_full_names") or authors)
    plan = plan_features(snapshot, chunking)
    cleaned = clean_documents(snapshot, plan)
    chunk_embed_load(snapshot, plan, cleaned, chunking)

    changes = detect_new_writing(snapshot, force)
    if not changes.load().proceed:
        record_refresh(changes, production_before)
        return

    endpoint = start_dataset_llm(dataset_llm)
    dataset_config = {**datasets, "llm": {k: endpoint.load()[k] for k in ("base_url", "model")}}
    source_documents = load_cleaned_documents(dataset_config, authors)
    extracts = build_extracts(dataset_config, source_documents)
    generation = generate_samples(dataset_config, extracts)
    dataset = write_datasets(dataset_config, source_documents, extracts, generation)
    stop_dataset_llm(endpoint, dataset)
    dataset_dir = dataset.load().output_dir

    # The training steps belong to the twin's model version in ZenML's Model Control Plane, as in `training`.
    model = TWIN_MODEL.model_copy(update={"name": training.get("output", {}).get("name", TWIN_MODEL.name)})
    mode = training_mode or {"mode": "retrain"}
    train_dir = dataset_dir
    if mode.get("mode") == "continue" and production_before:  # from the production twin: new rows + a replay share
        continued = plan_continued_training(
            dataset, changes, model.name, mode.get("replay_share", 0.3), mode.get("seed", 42)
        ).load()
        training, train_dir = {**training, "model": continued["model"]}, continued["dataset_dir"]
    run = prepare_training_run.with_options(model=model)(training, train_dir, max_steps)
    sft = train_sft.with_options(model=model)(run)
    dpo = train_dpo.with_options(model=model)(run, sft) if training.get("dpo", {}).get("enabled", True) else None
    trained = register_twin.with_options(model=model)(run, sft, dpo)
    candidate = trained.load().registered
    if candidate is None:  # to_registry: false: nothing to evaluate or serve
        record_refresh(changes, production_before, dataset, trained)
        return

    # The candidate against the base and the production twin, answers included, on the new dataset's test split.
    models = ["base", f"twin={candidate.name}:{candidate.version}"] + (["production"] if production_before else [])
    evaluation_config = {**evaluation, "promotion": {**evaluation.get("promotion", {}), "candidate": "twin"}}
    if production_before:  # against production, the candidate must write the new writing's held-out answers better
        found = changes.load()
        voice = {**evaluation.get("voice", {}), "focus_documents": [*found.new, *found.changed]}
        evaluation_config = {**evaluation_config, "voice": voice}
    evaluation_plan = prepare_evaluation(evaluation_config, models, dataset_dir)
    voice = score_voice(evaluation_plan)
    generations = generate_answers(evaluation_plan)
    judge = judge_answers(evaluation_plan, generations)
    retrieval = evaluate_retrieval_metrics(evaluation_plan)
    promotion = promote_twin(evaluation_plan, voice, generations, judge)
    report = write_evaluation_report(evaluation_plan, voice, generations, judge, retrieval, promotion)

    serving = serve_production(promotion, trained, switch_serving)
    record_refresh(changes, production_before, dataset, trained, promotion, report.load().output_dir, serving)
