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
