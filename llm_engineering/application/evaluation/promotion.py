"""The promotion rule: the candidate (the twin) becomes production when it beats the current production version
on the primary metric — or, with no production version yet, the base model. Pure: applying the decision
(registry pointer, ZenML stage) is the model layer's job."""

from __future__ import annotations

from llm_engineering.application.evaluation.results import PromotionDecision, metric_info


def decide_promotion(
    *,
    metric: str,
    candidate: str,
    candidate_version: str | None,
    candidate_value: float | None,
    baseline: str,
    baseline_value: float | None,
    min_improvement: float = 0.0,
    already_production: bool = False,
) -> PromotionDecision:
    info = metric_info(metric)
    decision = PromotionDecision(
        candidate=candidate,
        candidate_version=candidate_version,
        metric=metric,
        higher_is_better=info.higher_is_better,
        candidate_value=candidate_value,
        baseline=baseline,
        baseline_value=baseline_value,
    )
    direction = "higher" if info.higher_is_better else "lower"
    if candidate_version is None:
        decision.reason = f"{candidate} is not a registry version (a plain checkpoint): nothing to promote"
        return decision
    if already_production:
        decision.reason = f"{candidate} ({candidate_version}) is already the production version"
        return decision
    if candidate_value is None:
        decision.reason = f"{metric} could not be measured for {candidate}: not promoted"
        return decision
    if baseline_value is None:
        decision.promote = True
        decision.reason = f"{metric} = {candidate_value:.4g} for {candidate}; {baseline} has no value to beat"
        return decision
    if info.higher_is_better:
        needed = baseline_value + abs(baseline_value) * min_improvement
        wins = candidate_value > needed
    else:
        needed = baseline_value - abs(baseline_value) * min_improvement
        wins = candidate_value < needed
    decision.promote = wins
    margin = f" by more than {min_improvement:.0%}" if min_improvement else ""
    verdict = "beats" if wins else "does not beat"
    decision.reason = (
        f"{candidate} ({candidate_version}) {verdict} {baseline}{margin} on {info.label} ({metric}, {direction} is "
        f"better): {candidate_value:.4g} vs {baseline_value:.4g}"
    )
    return decision


def decide_for_plan(
    summary: dict[str, dict[str, float | None]],
    candidate: str,
    candidate_version: str | None,
    metric: str,
    min_improvement: float,
    production_version: str | None,
) -> PromotionDecision:
    """Candidate vs the production version when one exists (measured in this run), else vs the base model."""
    has_production = production_version is not None and "production" in summary
    baseline = f"production ({production_version})" if has_production else "base"
    baseline_value = summary.get("production" if has_production else "base", {}).get(metric)
    return decide_promotion(
        metric=metric,
        candidate=candidate,
        candidate_version=candidate_version,
        candidate_value=summary.get(candidate, {}).get(metric),
        baseline=baseline,
        baseline_value=baseline_value,
        min_improvement=min_improvement,
        already_production=production_version is not None and production_version == candidate_version,
    )


# --- the gate: voice AND answering ----------------------------------------------------------------------------------
# (metric, direction, tolerance field of GateTolerances): the candidate may not be worse than a baseline by more
# than the tolerance (absolute) on any of these.
ANSWERING_RULES = (
    ("answer.fact_recall", "fact_recall"),
    ("answer.supported_rate", "supported"),
    ("answer.degenerate_rate", "degenerate"),
)


def _rule(name: str, passed: bool, metric: str, candidate: float | None, baseline_name: str,
          baseline: float | None, tolerance: float | None, text: str) -> dict:  # fmt: skip
    return {
        "rule": name,
        "passed": passed,
        "metric": metric,
        "candidate": candidate,
        "baseline": baseline_name,
        "baseline_value": baseline,
        "tolerance": tolerance,
        "text": text,
    }


def decide_gate(
    summary: dict[str, dict[str, float | None]],
    candidate: str,
    candidate_version: str | None,
    metric: str,
    min_improvement: float,
    production_version: str | None,
    *,
    answering: bool = True,
    tolerances: dict[str, float] | None = None,
    production_metric: str | None = None,
) -> PromotionDecision:
    """Promote only when the candidate beats the base AND the current production model (when one exists) on the
    voice metric, AND does not regress on answering (reference-fact recall, answers with a supported citation,
    degenerate answers) against the base (and production, where production's answers were measured) by more than
    a stated absolute tolerance. Every rule is recorded with its numbers; the first failed one decides.
    `production_metric` (a refresh: voice.new_writing_perplexity) replaces `metric` in the rule against production
    when both models have it: a refreshed twin must write the author's new writing better than production does."""
    tolerances = {"fact_recall": 0.02, "supported": 0.05, "degenerate": 0.0, **(tolerances or {})}
    has_production = production_version is not None and "production" in summary
    baselines = [("base", "base")] + ([("production", f"production ({production_version})")] if has_production else [])
    rules: list[dict] = []
    first: PromotionDecision | None = None
    for key, label in baselines:
        if key not in summary and key == "base" and has_production:
            continue
        voice_metric = metric
        if (
            key == "production"
            and production_metric
            and all(summary.get(name, {}).get(production_metric) is not None for name in (candidate, key))
        ):
            voice_metric = production_metric
        decision = decide_promotion(
            metric=voice_metric,
            candidate=candidate,
            candidate_version=candidate_version,
            candidate_value=summary.get(candidate, {}).get(voice_metric),
            baseline=label,
            baseline_value=summary.get(key, {}).get(voice_metric),
            min_improvement=min_improvement,
            already_production=production_version is not None and production_version == candidate_version,
        )
        if candidate_version is None or decision.reason.endswith("already the production version"):
            return decision  # nothing to decide
        first = first or decision
        rules.append(_rule(f"voice vs {label}", decision.promote, voice_metric, decision.candidate_value, label,
                           decision.baseline_value, None, decision.reason))  # fmt: skip
    if answering:
        for key, label in baselines:
            values = summary.get(key, {})
            if not any(values.get(m) is not None for m, _ in ANSWERING_RULES):
                continue  # e.g. production scored for voice only: no answers to compare with
            for answer_metric, tolerance_key in ANSWERING_RULES:
                tolerance = tolerances[tolerance_key]
                info = metric_info(answer_metric)
                value = summary.get(candidate, {}).get(answer_metric)
                reference = values.get(answer_metric)
                if value is None:
                    passed, text = False, f"{answer_metric} could not be measured for {candidate}: not promoted"
                elif reference is None:
                    passed, text = True, f"{label} has no {answer_metric} to compare with"
                else:
                    limit = reference - tolerance if info.higher_is_better else reference + tolerance
                    passed = value >= limit if info.higher_is_better else value <= limit
                    verb = "does not regress" if passed else "regresses"
                    text = (
                        f"{candidate} {verb} on {info.label} ({answer_metric}) vs {label}: {value:.3g} vs "
                        f"{reference:.3g}, tolerance {tolerance:g} ({'higher' if info.higher_is_better else 'lower'} "
                        "is better)"
                    )
                rules.append(_rule(f"answering vs {label}: {answer_metric}", passed, answer_metric, value, label,
                                   reference, tolerance, text))  # fmt: skip
    if answering and not any(r["rule"].startswith("answering") for r in rules):
        text = (
            f"answering could not be compared: no answer metrics for {candidate} and its baselines (RAG answers "
            "need the feature store and a QA file with reference answers); not promoted"
        )
        rules.append(_rule("answering measured", False, "answer.*", None, "base", None, None, text))
    assert first is not None
    failed = next((r for r in rules if not r["passed"]), None)
    decision = first.model_copy(
        update={
            "promote": failed is None,
            "rules": rules,
            "deciding_rule": failed["rule"] if failed else "all",
            "reason": failed["text"] if failed else "every rule passed: " + "; ".join(r["text"] for r in rules),
        }
    )
    if has_production:
        decision.baseline = f"production ({production_version})"
        decision.baseline_value = summary.get("production", {}).get(metric)
    return decision
