"""Continue-mode training data: the new writing's samples plus a replay share of the old ones (pure).

Continuing from the production twin on the new documents alone would let it forget the rest of the author; a
replay share of the older samples keeps them in view at a fraction of a full retrain's steps. The choice is
deterministic (a hash of the seed and the row), so a resumed refresh trains on the same rows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _draw(seed: int, row: dict[str, Any]) -> float:
    """A number in [0, 1) fixed by the seed and the row's content."""
    digest = hashlib.sha256(f"{seed}\n{json.dumps(row, sort_keys=True, default=str)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def replay_rows(rows: list[dict[str, Any]], focus: set[str], share: float, seed: int) -> list[dict[str, Any]]:
    """Every row of a `focus` document (new or changed writing) and about `share` of the others, in order."""
    return [row for row in rows if str(row.get("document_id")) in focus or _draw(seed, row) < share]
