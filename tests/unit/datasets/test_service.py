"""The dataset generation service end to end on fakes of every port (fast): files and fields, the training
loader reads them, the cache makes a re-run call the LLM 0 times, failures leave nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_engineering.application.datasets.service import DatasetGenerationConfig, spread_cap
from llm_engineering.domain.datasets import DropReason
from llm_engineering.domain.errors import ConfigurationError, LLMUnavailableError, UnknownAuthorError
from llm_engineering.domain.prompts import DATASET_PROMPT_VERSION, UNANSWERED_ANSWER
from llm_engineering.infrastructure.kv_cache import MemoryKeyValueCache
from tests.fakes import unreachable_llm
from tests.unit.datasets.conftest import AUTHOR, OTHER_AUTHOR, extract_of, make_llm, scripted_questions

INSTRUCT_FIELDS = {"instruction", "answer", "messages", "source_link", "author"}
PREFERENCE_FIELDS = {"prompt", "chosen", "rejected", "source_link", "author"}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_generates_both_datasets_grounded_split_by_document(corpus, tmp_path):
    llm = make_llm()
    report = corpus.service(tmp_path, llm).run(authors=[AUTHOR])
    out = Path(report.output_dir)
    assert out.parent == tmp_path / "datasets" and (tmp_path / "datasets" / "latest").read_text().strip() == out.name

    instruct = {s: rows(out / f"instruct_{s}.jsonl") for s in ("train", "test")}
    preference = {s: rows(out / f"preference_{s}.jsonl") for s in ("train", "test")}
    assert instruct["train"] and instruct["test"] and preference["train"] and preference["test"]
    documents = {corpus.warehouse.documents[link].id for link in corpus.warehouse.documents}
    texts = {str(d): corpus.store.docs[str(d)][0].text for d in documents if str(d) in corpus.store.docs}
    for samples in instruct.values():
        for row in samples:
            assert row.keys() >= INSTRUCT_FIELDS and row["author"] == AUTHOR
            assert row["messages"][-1] == {"role": "assistant", "content": row["answer"]}
            assert row["messages"][-2]["content"].endswith(row["instruction"])
            source = " ".join(texts[row["document_id"]].split())
            if row["kind"] == "unanswerable":  # its context leaves the source out, and the answer says so
                assert row["answer"] == UNANSWERED_ANSWER and row["source_link"] not in row["context_links"]
                continue
            answer = row["answer"].rsplit(" [", 1)[0] if row["with_context"] else row["answer"]
            assert " ".join(answer.split()) in source  # the author's words, verbatim (whitespace aside)
            if row["kind"] == "span":
                assert len(answer.split()) <= 60 and not answer.startswith("#")
    for samples in preference.values():
        for row in samples:
            assert row.keys() >= PREFERENCE_FIELDS
            if row["rejected_problem"] == "pasted_header":  # built: the span, opened by its source's header line
                header, pasted = row["rejected"].split("\n", 1)
                assert header.startswith("[") and header.endswith("(Ada Lovelace)") and "Context:" in str(row["prompt"])
                assert pasted == row["chosen"].replace(f" {header.split()[0]}", "")  # the span, its citation left out
                continue
            assert row["prompt"][-1]["role"] == "user" and row["rejected"].startswith("It depends")
            if row["kind"] == "no_context":
                assert row["chosen"] in texts[row["document_id"]]
            else:  # the base model's RAG answer cites nothing: the grounded span (or "not in the sources") wins
                assert (
                    row["rejected_problem"] in ("no_citation", "unsupported")
                    and "Context:" in row["prompt"][-1]["content"]
                )
    kinds = report.kinds
    assert kinds["span"] and kinds.get("pairs:with_context:no_citation") and kinds["pairs:no_context"]
    assert kinds["pairs:with_context:pasted_header"] == kinds["span"]  # one per cited span
    # No document on both sides, in either dataset.
    train_docs = {r["document_id"] for r in instruct["train"] + preference["train"]}
    test_docs = {r["document_id"] for r in instruct["test"] + preference["test"]}
    assert train_docs and test_docs and not train_docs & test_docs

    assert report.instruct.train == len(instruct["train"]) and report.preference.test == len(preference["test"])
    assert 0 < report.with_context_samples < report.instruct.train + report.instruct.test
    assert report.grounding["fully_grounded_share"] == 1.0
    assert report.drops[DropReason.EXTRACT_TOO_SHORT] >= 5  # every "Too short." section
    assert report.llm_calls == {"instructions": report.extracts_used, "rejected": len(llm.calls_of("chat"))}
    assert report.prompt_version == DATASET_PROMPT_VERSION and report.samples_per_s > 0
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["instruct"] == {"train": report.instruct.train, "test": report.instruct.test}
    assert on_disk["models"]["instructions"].startswith("test/scripted-llm")


def test_the_training_loader_reads_the_output(corpus, tmp_path):
    from llm_engineering.application.datasets.reader import load_training_data, resolve_dataset_dir
    from llm_engineering.settings import Settings
    from llm_engineering.wiring.container import Container

    report = corpus.service(tmp_path, make_llm()).run(authors=[AUTHOR])
    resolved = resolve_dataset_dir(Container(Settings(data_dir=tmp_path)).artifacts("datasets"), None)
    assert resolved == Path(report.output_dir).resolve()
    data = load_training_data(resolved)
    assert data.info.counts["instruct_train"] == report.instruct.train
    assert data.info.version == report.version and data.info.authors == [AUTHOR]
    example = data.sft_train[0]
    assert example["completion"][0]["role"] == "assistant" and example["prompt"][-1]["role"] == "user"
    assert data.dpo_train[0]["chosen"][0]["content"] and data.dpo_train[0]["rejected"][0]["content"]


def test_a_rerun_on_unchanged_documents_calls_the_llm_zero_times(corpus, tmp_path):
    cache = MemoryKeyValueCache()
    first = corpus.service(tmp_path, make_llm(), cache=cache).run(authors=[AUTHOR])
    second_llm = make_llm()
    second = corpus.service(tmp_path, second_llm, cache=cache).run(authors=[AUTHOR])
    assert second_llm.calls == [] and second.total_llm_calls == 0
    assert second.cache_hits["instructions"] == first.extracts_used
    assert second.instruct == first.instruct and second.preference == first.preference
    a, b = Path(first.output_dir), Path(second.output_dir)
    assert a != b  # a new version; the same content
    for name in ("instruct_train.jsonl", "instruct_test.jsonl", "preference_train.jsonl", "preference_test.jsonl"):
        assert (a / name).read_text() == (b / name).read_text()
    assert (tmp_path / "datasets" / "latest").read_text().strip() == b.name


def test_invalid_output_is_retried_once_then_dropped(corpus, tmp_path):
    attempts: dict[str, int] = {}

    def flaky(messages):
        text = extract_of(messages)
        attempts[text] = attempts.get(text, 0) + 1
        if "Paged attention" in text:
            return {"questions": []}  # unusable, every time
        if attempts[text] == 1:
            return None  # unparsable the first time only
        return scripted_questions(messages)

    llm = make_llm(json_answers={"instructions": flaky})
    report = corpus.service(tmp_path, llm).run(authors=[AUTHOR])
    assert set(attempts.values()) == {2}  # one retry each, never more
    assert report.drops[DropReason.INVALID_OUTPUT] == 1
    retries = [c.options["temperature"] for c in llm.calls_of("chat_json")]
    assert retries.count(0.0) == retries.count(0.7) == report.extracts_used


def test_filters_are_counted_with_their_reasons(corpus, tmp_path):
    def questions(messages):
        text = extract_of(messages)
        if "upsert" in text:
            return {"questions": ["What does the passage say about upserts and hashes?", "Why?"]}
        if "Paged attention" in text:
            copied = " ".join(text.split()[:8])
            # The second one is about another document: it retrieves that one, not its source.
            return {"questions": [f"Is it true that {copied}?", "How does reciprocal rank fusion weight BM25 lists?"]}
        return scripted_questions(messages)

    def rejected(messages):  # the base model copies the author for one question
        return "Reciprocal rank fusion adds one over sixty plus the rank" if "fusion" in messages[-1]["content"] else ""

    llm = make_llm(json_answers={"instructions": questions}, answer=rejected)
    report = corpus.service(tmp_path, llm).run(authors=[AUTHOR])
    assert report.drops[DropReason.META_REFERENCE] == 1
    assert report.drops[DropReason.INSTRUCTION_LENGTH] == 1
    assert report.drops[DropReason.COPIES_ANSWER] == 1
    assert report.drops[DropReason.ROUNDTRIP_MISS] >= 1
    assert report.drops[DropReason.REJECTED_EMPTY] >= 1
    sampled_pairs = report.preference.train + report.preference.test - report.kinds["pairs:with_context:pasted_header"]
    assert sampled_pairs < report.instruct.train + report.instruct.test


def test_near_duplicate_instructions_across_extracts_are_dropped(corpus, tmp_path):
    llm = make_llm(json_answers={"instructions": {"questions": ["How do LoRA adapters train low rank matrices?"] * 2}})
    config = DatasetGenerationConfig(
        extracts={"min_tokens": 20, "target_tokens": 40, "max_tokens": 80},
        filters={"roundtrip": False},
        samples={"with_context_share": 0.0},
        hf_datasets=False,
    )
    report = corpus.service(tmp_path, llm, config=config).run(authors=[AUTHOR])
    assert report.instruct.train + report.instruct.test == 1  # the same question once, whatever the extract
    assert report.drops[DropReason.DUPLICATE_INSTRUCTION] == report.extracts_used - 1


def test_a_judge_scores_and_filters_when_configured(corpus, tmp_path):
    judge = make_llm(json_answers={"judge_score": lambda m: {"score": 2 if "Why does" in m[-1]["content"] else 5}})
    report = corpus.service(tmp_path, make_llm(), judge=judge).run(authors=[AUTHOR])
    assert report.drops[DropReason.JUDGE_LOW] >= 1 and report.models["judge"].startswith("test/scripted-llm")
    out = Path(report.output_dir)
    assert all(r["judge_score"] == 5 for r in rows(out / "instruct_train.jsonl"))


def test_all_authors_by_default_and_author_names_are_canonical(corpus, tmp_path):
    report = corpus.service(tmp_path, make_llm()).run(authors=None, max_extracts=6)
    assert report.authors == [AUTHOR, OTHER_AUTHOR] and report.extracts_used == 6
    report = corpus.service(tmp_path, make_llm()).run(authors=["ada  LOVELACE"], max_extracts=4)
    assert report.authors == [AUTHOR]


def test_max_extracts_spreads_over_documents(corpus, tmp_path):
    service = corpus.service(tmp_path, make_llm())
    extracts = service.extract(service.load([AUTHOR])).extracts
    capped = spread_cap(extracts, 6)
    assert len({e.document_id for e in capped}) == 6
    assert capped == [e for e in extracts if e in capped]  # document order kept


def test_unknown_author_or_no_documents_is_a_clear_error(corpus, tmp_path):
    with pytest.raises(UnknownAuthorError, match="Alan Turing"):
        corpus.service(tmp_path, make_llm()).run(authors=["Alan Turing"])
    corpus.warehouse.get_or_create_user("Alan Turing")
    with pytest.raises(ConfigurationError, match=r"'Alan Turing'.*poe run-feature-engineering-pipeline"):
        corpus.service(tmp_path, make_llm()).run(authors=["Alan Turing"])
    assert not (tmp_path / "datasets").exists()


def test_unreachable_llm_names_the_url_and_the_fix_and_writes_nothing(corpus, tmp_path):
    llm = unreachable_llm()
    with pytest.raises(LLMUnavailableError) as info:
        corpus.service(tmp_path, llm).run(authors=[AUTHOR])
    message = str(info.value)
    assert llm.base_url in message and "poe run-llm-server" in message and "DATASET_LLM_BASE_URL" in message
    assert not (tmp_path / "datasets").exists()


def test_a_failure_mid_run_leaves_no_folder_and_keeps_latest(corpus, tmp_path):
    cache = MemoryKeyValueCache()
    good = corpus.service(tmp_path, make_llm(), cache=cache).run(authors=[AUTHOR], max_extracts=3)
    calls = {"n": 0}

    def dies_later(messages):
        calls["n"] += 1
        if calls["n"] > 1:
            raise LLMUnavailableError("connection refused")
        return scripted_questions(messages)

    with pytest.raises(LLMUnavailableError):
        corpus.service(tmp_path, make_llm(json_answers={"instructions": dies_later}), cache=cache).run(authors=[AUTHOR])
    root = tmp_path / "datasets"
    assert sorted(p.name for p in root.iterdir()) == sorted([Path(good.output_dir).name, "latest"])
    assert (root / "latest").read_text().strip() == Path(good.output_dir).name


def test_explicit_output_folder_is_written_atomically_and_latest_is_untouched(corpus, tmp_path):
    target = tmp_path / "mine"
    report = corpus.service(tmp_path, make_llm()).run(authors=[AUTHOR], output=target, max_extracts=3)
    assert Path(report.output_dir) == target and (target / "report.json").is_file()
    assert not (tmp_path / "datasets" / "latest").exists()
    again = corpus.service(tmp_path, make_llm()).run(authors=[AUTHOR], output=target, max_extracts=3)
    assert again.output_dir == str(target)  # a dataset folder is replaced
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigurationError, match="not a dataset folder"):
        corpus.service(tmp_path, make_llm()).run(authors=[AUTHOR], output=tmp_path / "other", max_extracts=3)


def test_hf_datasets_are_saved_beside_the_jsonl(corpus, tmp_path):
    from datasets import load_from_disk

    config = DatasetGenerationConfig(
        extracts={"min_tokens": 20, "target_tokens": 40, "max_tokens": 80}, samples={"test_share": 0.2}
    )
    report = corpus.service(tmp_path, make_llm(), config=config).run(authors=[AUTHOR])
    out = Path(report.output_dir)
    instruct = load_from_disk(str(out / "instruct"))
    preference = load_from_disk(str(out / "preference"))
    assert instruct["train"].num_rows == report.instruct.train and instruct["test"].num_rows == report.instruct.test
    assert preference["train"].num_rows == report.preference.train
    assert {"instruction", "answer", "messages", "source_link", "author"} <= set(instruct["train"].column_names)
    assert {"prompt", "chosen", "rejected", "source_link", "author"} <= set(preference["test"].column_names)
