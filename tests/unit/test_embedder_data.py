"""The embedder's training examples and their evaluation (application/training/embedder_data.py) on a tiny corpus
indexed by the real feature pipeline into the fakes of the ports."""

from __future__ import annotations

from llm_engineering.application.rag.retriever import HybridRetriever
from llm_engineering.application.training.embedder_data import build_examples, corpus_passages, evaluate_examples
from tests.fakes import fake_rag_corpus

TOPICS = {
    ("Ada Lovelace", "engines"): "The analytical engine weaves algebraic patterns as the loom weaves flowers.",
    ("Ada Lovelace", "notes"): "Note G computes Bernoulli numbers with a cycle of operations on the engine.",
    ("Alan Turing", "machines"): "A computing machine reads one symbol on the tape and changes its state.",
    ("Alan Turing", "morphogenesis"): "Reaction and diffusion of chemicals explain spots and stripes on animals.",
}


def _corpus():
    _, store, encoder = fake_rag_corpus(TOPICS)
    passages = corpus_passages(store.cleaned_documents(), encoder)
    return store, encoder, passages


def test_positive_is_the_sources_passage_and_negatives_come_from_other_documents():
    store, encoder, passages = _corpus()
    link = "https://example.org/lovelace/notes"
    rows = [
        {"instruction": "Which numbers does Note G compute?", "answer": TOPICS[("Ada Lovelace", "notes")] + " [1]",
         "source_link": link},
        {"instruction": "which numbers does note g compute?", "answer": "anything", "source_link": link},
        {"instruction": "What explains stripes on animals?", "answer": "Nothing in the sources covers this.",
         "source_link": "https://example.org/turing/morphogenesis"},
        {"instruction": "What is a loom?", "answer": "a loom", "source_link": "https://example.org/nobody/else"},
    ]  # fmt: skip
    examples, report = build_examples(rows, passages, HybridRetriever(store, encoder), negatives=2)
    assert [e.query for e in examples] == ["Which numbers does Note G compute?"]
    example = examples[0]
    assert "Bernoulli numbers" in example.positive and example.positive.startswith("Ada Lovelace on notes")
    own = {p.text for p in passages if p.link == link}
    assert len(example.negatives) == 2 and not own & set(example.negatives)
    assert report.as_dict()["dropped"] == {
        "duplicate_or_empty_question": 1,
        "answer_not_in_source": 1,
        "source_not_indexed": 1,
    }


def test_evaluation_ranks_documents_by_their_best_passage():
    _, encoder, passages = _corpus()
    rows = [
        {"instruction": "tape symbol state machine", "answer": TOPICS[("Alan Turing", "machines")],
         "source_link": "https://example.org/turing/machines"},
        {"instruction": "analytical engine loom flowers", "answer": TOPICS[("Ada Lovelace", "engines")],
         "source_link": "https://example.org/lovelace/engines"},
    ]  # fmt: skip
    examples, _ = build_examples(rows, passages)
    result = evaluate_examples(encoder.encode, examples, passages, k=10)
    assert result == {"questions": 2, "hit@1": 1.0, "hit@5": 1.0, "hit@10": 1.0, "mrr@10": 1.0}
    assert evaluate_examples(encoder.encode, [], passages) == {"questions": 0}
