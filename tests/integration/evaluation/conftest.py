"""The evaluation tests reuse the LLM tests' session fixtures: one real vLLM server, the sample corpus embedded."""

from tests.integration.evaluation import helpers  # noqa: F401 - sets OMP_WAIT_POLICY before torch loads
from tests.integration.llm.fixtures_llm import (  # noqa: F401 - fixtures are found by name
    prepared_model_dir,
    rag_corpus_settings,
    vllm_base_url,
)
