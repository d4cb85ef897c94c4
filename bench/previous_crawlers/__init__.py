"""The hand-rolled extractor as it was before issue #12 (commit 2341371), frozen for the extraction benchmark.

`bench/bench_extraction.py` runs it as the "previous" crawler mode next to today's crawlers, in the same run,
on the same pages. Only the module paths were rewritten (`llm_engineering.application.crawlers.X` ->
`previous_crawlers.X`); the crawler interface (`base.py`), the domain and the adapters are today's. Nothing
outside `bench/` imports it.
"""
