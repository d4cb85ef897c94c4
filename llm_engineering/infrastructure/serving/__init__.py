"""Which engine serves the twin, and switching it without downtime (docs/serving.md).

`active_serving(settings)` reads the serving state file; `switch_serving(settings, spec)` starts a second engine
for the new version, lets the RAG API follow and drains and stops the old one; `ServingFollower` is the API's side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_engineering.infrastructure.serving.state import ActiveServing, active_serving, serving_state_path

if TYPE_CHECKING:
    from llm_engineering.infrastructure.serving.switch import SwitchResult, switch_serving

__all__ = ["ActiveServing", "SwitchResult", "active_serving", "serving_state_path", "switch_serving"]


def __getattr__(name: str) -> Any:
    # The switch imports the engine launcher (and it imports state.py): loaded on first use, so reading the state
    # stays cheap and free of import cycles.
    if name in ("switch_serving", "SwitchResult"):
        from llm_engineering.infrastructure.serving import switch

        return getattr(switch, name)
    raise AttributeError(name)
