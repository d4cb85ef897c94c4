"""The evaluation tests reuse the session's vLLM server and sample corpus (tests/integration/conftest.py)."""

from tests.integration.evaluation import helpers  # noqa: F401 - sets OMP_WAIT_POLICY before torch loads
