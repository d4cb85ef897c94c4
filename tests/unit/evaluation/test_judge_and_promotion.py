"""The judge (JSON-schema verdicts, one retry then missing, position-swap agreement) on a scripted LLM, and the
promotion rule."""

from __future__ import annotations

import asyncio

import pytest

from llm_engineering.application.evaluation.judge import Judge, judge_model
from llm_engineering.application.evaluation.promotion import decide_for_plan, decide_promotion
from tests.fakes import ScriptedLLM, unreachable_llm

ITEMS = [("a1", "Why trace prompts?", "Because logs hide it.", "Because application logs tell you nothing.")]


def _answer_position(messages) -> str:
    """A consistent judge: always prefers the author's answer, wherever it is."""
    text = messages[-1]["content"]
    return "A" if text.index("application logs") < text.index("Answer B") else "B"


def test_consistent_judge_agrees_with_itself_after_the_swap():
    llm = ScriptedLLM(
        json_answers={
            "judge_verdict": {"accuracy": 2, "style": 3},
            "judge_pairwise": lambda messages: {"winner": _answer_position(messages)},
        }
    )
    judge = Judge(llm)
    result = asyncio.run(judge_model(judge, "twin", ITEMS))
    assert result.metrics["judge.accuracy"] == 2 and result.metrics["judge.style"] == 3
    assert result.metrics["judge.agreement"] == 1.0 and result.metrics["judge.win_rate_vs_author"] == 0.0
    assert result.rows[0]["consistent"] is True and result.rows[0]["winner"] == "author"
    schemas = {c.options["name"] for c in llm.calls_of("chat_json")}
    assert schemas == {"judge_verdict", "judge_pairwise"} and len(llm.calls) == 3  # absolute + both orders


def test_a_judge_that_always_says_a_has_zero_agreement():
    llm = ScriptedLLM(json_answers={"judge_verdict": {"accuracy": 1, "style": 1}, "judge_pairwise": {"winner": "A"}})
    result = asyncio.run(judge_model(Judge(llm), "base", ITEMS))
    assert result.metrics["judge.agreement"] == 0.0 and result.metrics["judge.position_a_bias"] == 1.0
    assert result.metrics["judge.win_rate_vs_author"] is None  # no consistent verdict to count


def test_invalid_output_is_retried_once_then_missing():
    answers = iter([None, {"accuracy": 3, "style": 2}])  # unparsable first, valid on the retry
    llm = ScriptedLLM(json_answers={"judge_verdict": lambda m: next(answers)})
    judge = Judge(llm)
    assert asyncio.run(judge.absolute("q", "a")) == {"accuracy": 3, "style": 2}
    assert judge.retries == 1 and judge.missing == 0

    out_of_schema = ScriptedLLM(json_answers={"judge_verdict": {"accuracy": 7, "style": "great"}})
    judge = Judge(out_of_schema)
    assert asyncio.run(judge.absolute("q", "a")) is None
    assert judge.calls == 2 and judge.missing == 1


def test_an_unreachable_judge_counts_missing_and_never_raises():
    judge = Judge(unreachable_llm())
    result = asyncio.run(judge_model(judge, "twin", ITEMS))
    assert result.metrics["judge.accuracy"] is None and result.metrics["judge.missing_rate"] == 1.0
    assert judge.errors and "LLM_BASE_URL" in judge.errors[0]


# --- promotion -----------------------------------------------------------------------------------------------------
def test_promotion_lower_is_better_against_base_and_production():
    summary = {"base": {"voice.perplexity": 12.0}, "twin": {"voice.perplexity": 9.0}}
    decision = decide_for_plan(summary, "twin", "v0002", "voice.perplexity", 0.0, production_version=None)
    assert decision.promote and decision.baseline == "base" and "beats base" in decision.reason
    summary["production"] = {"voice.perplexity": 8.5}
    decision = decide_for_plan(summary, "twin", "v0002", "voice.perplexity", 0.0, production_version="v0001")
    assert not decision.promote and "does not beat production (v0001)" in decision.reason
    assert "9 vs 8.5" in decision.reason


def test_promotion_edge_cases():
    higher = decide_promotion(metric="judge.accuracy", candidate="twin", candidate_version="v3", candidate_value=2.2,
                              baseline="base", baseline_value=2.0, min_improvement=0.2)  # fmt: skip
    assert not higher.promote and higher.higher_is_better and "by more than 20%" in higher.reason
    assert not decide_promotion(metric="voice.perplexity", candidate="twin", candidate_version=None,
                                candidate_value=1.0, baseline="base", baseline_value=2.0).promote  # fmt: skip
    same = decide_for_plan({"twin": {"voice.perplexity": 1.0}}, "twin", "v1", "voice.perplexity", 0.0, "v1")
    assert not same.promote and "already the production version" in same.reason
    missing = decide_promotion(metric="voice.perplexity", candidate="twin", candidate_version="v1",
                               candidate_value=None, baseline="base", baseline_value=2.0)  # fmt: skip
    assert not missing.promote and "could not be measured" in missing.reason


@pytest.mark.parametrize(
    "bad", [{"models": "x", "voice": {"max_samples": 0}}, {"nope": 1}, {"ragas": {"llm_metrics": ["bleu"]}}]
)
def test_config_errors_name_the_key(bad):
    from llm_engineering.application.evaluation.config import parse_evaluation_config
    from llm_engineering.domain.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as excinfo:
        parse_evaluation_config(bad, "configs/evaluating.yaml")
    assert "configs/evaluating.yaml" in str(excinfo.value)


def test_the_shipped_config_parses():
    from llm_engineering.application.evaluation.config import load_evaluation_config
    from llm_engineering.settings import PROJECT_ROOT

    config = load_evaluation_config(PROJECT_ROOT / "configs" / "evaluating.yaml")
    assert config.models == ["base", "sft", "twin"] and config.promotion.metric == "voice.perplexity"
