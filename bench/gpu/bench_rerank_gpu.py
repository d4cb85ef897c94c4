"""Speed of the query-likelihood reranker on a CUDA GPU (issue #13): what one rerank costs where it is cheap.

One self-contained script for a GPU machine without network or weights: a randomly initialised model of the
SmolLM2-135M-Instruct shape (the packaged reranking LM; random weights give the same cost, not the same
ranking), a byte-level BPE tokenizer trained on the spot, and the project's own `QueryLikelihoodReranker` over
its `TransformersScorer` (bf16 on CUDA). Each search scores 10 passages of ~300 tokens (the rerank pool: the best
chunk of each of 10 documents; the rag_blogs chunks are <= 221 MiniLM tokens + the prompt). Records the median
and p95 time per search over `--searches` searches after warm-up, in `$OUT/rerank_gpu.json`.

    python bench/gpu/bench_rerank_gpu.py [--searches 30] [--out $OUT]

Needs torch with CUDA, transformers, tokenizers and the project's light dependencies (pydantic, loguru, pyyaml).
Without CUDA it exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POOL = 10  # RERANK_DOCUMENTS' default
PASSAGE_TOKENS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=30)
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT_ROOT))
    sys.path.insert(0, str(Path(__file__).parent))
    import torch

    if not torch.cuda.is_available():
        print("No CUDA device: this benchmark needs a GPU machine (nothing was run).", file=sys.stderr)
        raise SystemExit(2)
    from check_training_gpu import TINY_DATASET, build_random_model, train_tokenizer
    from transformers import AutoTokenizer

    from llm_engineering.application.rag.query_likelihood import QueryLikelihoodReranker
    from llm_engineering.domain.prompts import query_likelihood_messages
    from llm_engineering.infrastructure.ml.scorer import TransformersScorer

    texts = []
    for path in sorted(TINY_DATASET.glob("instruct_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts.append((row["instruction"], row["answer"]))
    with tempfile.TemporaryDirectory(prefix="rerank-gpu-") as scratch:
        folder = Path(scratch) / "smollm2-135m-shape"
        folder.mkdir()
        train_tokenizer(folder)
        params = build_random_model("135m", folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)

        def passage(i: int) -> str:  # real prose, repeated to the pool's passage length in this tokenizer's tokens
            words, ids = [], []
            j = i
            while len(ids) < PASSAGE_TOKENS:
                words.append(texts[j % len(texts)][1])
                ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
                j += 1
            return tokenizer.decode(ids[:PASSAGE_TOKENS])

        reranker = QueryLikelihoodReranker(TransformersScorer(folder, batch_size=POOL, device="cuda"))
        searches = [(texts[i % len(texts)][0], [passage(i * POOL + n) for n in range(POOL)]) for i in range(3)]
        for question, passages in searches:  # warm-up: weights on the GPU, kernels chosen
            reranker.score(question, passages)
        timings = []
        for i in range(args.searches):
            question, passages = searches[i % len(searches)]
            torch.cuda.synchronize()
            started = time.perf_counter()
            reranker.score(question, passages)
            torch.cuda.synchronize()
            timings.append(time.perf_counter() - started)
        question, passages = searches[0]
        prompt_tokens = len(reranker.scorer.encode(query_likelihood_messages(passages[0]), question)[0])
    result = {
        "benchmark": "rerank_gpu",
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "model": "random weights, SmolLM2-135M-Instruct shape (LlamaConfig), bf16",
        "parameters": params,
        "pool_passages": POOL,
        "tokens_per_scored_sequence": prompt_tokens,
        "searches": args.searches,
        "search_ms_median": round(statistics.median(timings) * 1000, 1),
        "search_ms_p95": round(sorted(timings)[int(0.95 * (len(timings) - 1))] * 1000, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rerank_gpu.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
