"""The composition root: the container that builds adapters from `Settings` (`container.py`), and the two runs
that assemble adapters chosen by settings around application use-cases: training (`training.py`) and
evaluation (`evaluation.py`). Nothing below this package imports it."""

from llm_engineering.wiring.container import Container, get_container

__all__ = ["Container", "get_container"]
