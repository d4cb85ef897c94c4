"""The RAG service's orchestration with fakes of every port (fast; the real-service tests cover the adapters).

Checks what the service itself decides: the author is resolved once and applied to every search, the rule
match skips the LLM self-query, history is trimmed oldest first, an oversized question shrinks the budget,
cited sources are marked, a stream yields sources → deltas → done, and failures surface as the right errors.
"""

from __future__ import annotations

import asyncio

import pytest

from llm_engineering.application.rag.rag_service import RAGService
from llm_engineering.domain.documents import ArticleDocument
from llm_engineering.domain.errors import LLMUnavailableError, UnknownAuthorError
from tests.fakes import RecordingTracer, ScriptedLLM, fake_rag_corpus, fake_services, unreachable_llm

TOPICS = {
    ("Ada Lovelace", "lora"): "LoRA adapters train a few low rank matrices while the base model stays frozen.",
    ("Ada Lovelace", "hybrid"): "Hybrid search fuses sparse BM25 scores and dense vectors with rank fusion.",
    ("Grace Hopper", "lora"): "Grace measured LoRA adapters on a laptop CPU and found them slow but workable.",
    ("Grace Hopper", "serving"): "Serving with continuous batching keeps the accelerator busy under load.",
}


@pytest.fixture
def corpus():
    return fake_rag_corpus(TOPICS)


def make_service(corpus, llm: ScriptedLLM, **config) -> tuple[RAGService, RecordingTracer]:
    service, _, tracer = fake_services(corpus, llm, **config)
    return service, tracer


def run(coro):
    return asyncio.run(coro)


def expansion(*queries: str) -> dict:
    return {"queries": list(queries)}


def test_author_named_in_the_question_is_resolved_once_by_rule_and_filters_every_search(corpus):
    llm = ScriptedLLM(
        answer="Grace found LoRA slow but workable [1].",
        json_answers={"query_expansion": expansion("LoRA speed on a CPU by Grace", "LoRA adapters on laptops")},
    )
    service, tracer = make_service(corpus, llm)
    answer = run(service.answer("What did Grace Hopper measure about LoRA adapters?"))

    assert answer.author == "Grace Hopper" and answer.author_method == "rule"
    names = [c.options["name"] for c in llm.calls_of("chat_json")]
    assert names == ["query_expansion"]  # the rule found the author: no LLM self-query call
    searches = corpus[1].searches
    assert len(searches) == 3 and {s["author"] for s in searches} == {"Grace Hopper"}
    assert answer.sources and {s.author for s in answer.sources} == {"Grace Hopper"}
    assert [s.number for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert answer.sources[0].cited and not any(s.cited for s in answer.sources[1:])
    assert answer.expanded_queries[0] == "What did Grace Hopper measure about LoRA adapters?"
    assert {"self_query", "query_expansion", "search", "fusion", "context", "generation", "total"} <= set(
        answer.timings_ms
    )
    assert tracer.traces[0].ended["error"] is None


def test_llm_self_query_runs_only_when_the_rule_finds_no_full_name(corpus):
    llm = ScriptedLLM(json_answers={"self_query": {"author": "Ada Lovelace"}, "query_expansion": expansion()})
    service, _ = make_service(corpus, llm)
    answer = run(service.answer("What does Lovelace say about hybrid search?"))
    assert answer.author == "Ada Lovelace" and answer.author_method == "llm"

    wrong = ScriptedLLM(json_answers={"self_query": {"author": "Grace Hopper"}, "query_expansion": expansion()})
    service, _ = make_service(corpus, wrong)
    rejected = run(service.answer("What does Lovelace say about hybrid search?"))
    assert rejected.author is None and rejected.author_method == "none"
    assert any("rejected" in note for note in rejected.notes)


def test_requested_author_must_exist(corpus):
    service, tracer = make_service(corpus, ScriptedLLM(json_answers={"query_expansion": expansion()}))
    with pytest.raises(UnknownAuthorError, match="Alan Turing"):
        run(service.answer("LoRA?", author="Alan Turing"))
    assert isinstance(tracer.traces[0].ended["error"], UnknownAuthorError)
    answer = run(service.answer("LoRA?", author="ada  LOVELACE"))
    assert answer.author == "Ada Lovelace" and answer.author_method == "request"


def test_history_is_trimmed_oldest_first_to_half_the_window(corpus):
    llm = ScriptedLLM(json_answers={"query_expansion": expansion()})
    service, _ = make_service(corpus, llm, max_model_len=400, max_answer_tokens=50)
    history = []
    for i in range(10):
        history += [{"role": "user", "content": f"old question {i} " + "word " * 20}]
        history += [{"role": "assistant", "content": f"old answer {i} " + "word " * 20}]
    run(service.answer("How do LoRA adapters work?", history=history))
    sent = llm.calls_of("chat")[0].messages
    kept = [m["content"] for m in sent[1:-1]]
    assert kept and len(kept) < len(history)
    assert kept == [m["content"] for m in history[-len(kept) :]]  # a suffix: the newest turns survive
    assert sum(len(c.split()) for c in kept) <= (400 - 50) // 2


def test_a_question_too_long_for_any_context_shrinks_the_answer_budget(corpus):
    llm = ScriptedLLM(json_answers={"query_expansion": expansion()})
    service, _ = make_service(corpus, llm, max_model_len=300, max_answer_tokens=100, expand_n=0)
    answer = run(service.answer("LoRA " * 250))
    assert "context: question too long for any context" in answer.notes
    options = llm.calls_of("chat")[0].options
    assert 16 <= options["max_tokens"] < 100
    assert answer.sources == []


def test_stream_yields_sources_then_deltas_then_done(corpus):
    llm = ScriptedLLM(answer="Hybrid search fuses both rankings [1].", json_answers={"query_expansion": expansion()})
    service, _ = make_service(corpus, llm)

    async def collect():
        return [event async for event in service.stream("How does hybrid search fuse rankings?")]

    events = run(collect())
    kinds = [e.kind for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
    assert "".join(e.data for e in events if e.kind == "delta") == "Hybrid search fuses both rankings [1]."
    done = events[-1].data
    assert done.answer == "Hybrid search fuses both rankings [1]." and done.sources[0].cited
    assert done.tokens["completion"] == 6 and "first_token" in done.timings_ms


def test_unreachable_llm_falls_back_for_helpers_and_fails_the_answer_before_any_event(corpus):
    service, tracer = make_service(corpus, unreachable_llm())
    with pytest.raises(LLMUnavailableError):
        run(service.answer("How do LoRA adapters work?"))
    assert isinstance(tracer.traces[-1].ended["error"], LLMUnavailableError)

    async def first_event():
        events = service.stream("How do LoRA adapters work?")
        try:
            return await anext(events)
        finally:
            await events.aclose()

    with pytest.raises(LLMUnavailableError):  # nothing was yielded: the API can still send a real 503
        run(first_event())


def test_expansion_failure_is_a_note_not_an_error(corpus):
    llm = ScriptedLLM(json_answers={"query_expansion": LLMUnavailableError("down")})
    service, _ = make_service(corpus, llm)
    answer = run(service.answer("How do LoRA adapters work?"))
    assert answer.expanded_queries == ["How do LoRA adapters work?"]
    assert any(note.startswith("query expansion: llm error") for note in answer.notes)


def test_feature_planning_sorts_documents_into_new_changed_unchanged_and_removed(corpus):
    from llm_engineering.application.preprocessing.features import FeatureEngineering

    warehouse, store, encoder = corpus
    service = FeatureEngineering(warehouse, store, encoder, show_progress=False)
    docs = sorted(warehouse.documents.values(), key=lambda d: d.link)
    changed, removed = docs[0], docs[1]
    edited = {**changed.model_dump(exclude={"content_hash"}), "content": {**changed.content, "Content": "new text"}}
    warehouse.upsert_document(ArticleDocument(**edited))  # a new content hash, the same id
    del warehouse.documents[removed.link]
    user, _ = warehouse.get_or_create_user("Ada Lovelace")
    fresh = ArticleDocument(
        author_id=user.id, author_full_name=user.full_name, platform="blog", link="https://example.org/new",
        content={"Title": "New", "Content": "Brand new words."},
    )  # fmt: skip
    warehouse.upsert_document(fresh)

    plan = service.plan(service.query("all"))
    assert plan.new == [str(fresh.id)]
    assert plan.changed == [str(changed.id)]
    assert plan.removed == [str(removed.id)]
    assert len(plan.unchanged) == len(TOPICS) - 2
    assert str(changed.id) in plan.had_points and str(fresh.id) not in plan.had_points
    report = service.run("all")
    assert (report.new, report.changed, report.removed, report.unchanged) == (1, 1, 1, len(TOPICS) - 2)
    assert store.chunk_document_ids() == {str(d.id) for d in warehouse.documents.values()}
