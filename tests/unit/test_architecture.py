"""House rules that a linter does not check: every interface lives in application/ports.py."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "llm_engineering"
PORTS = PACKAGE / "application" / "ports.py"


def _protocol_classes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(base) for base in node.bases}
            if bases & {"Protocol", "typing.Protocol"}:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    return found


def test_no_protocol_outside_the_ports_module():
    stray = [hit for path in sorted(PACKAGE.rglob("*.py")) if path != PORTS for hit in _protocol_classes(path)]
    assert stray == [], "interfaces belong in llm_engineering/application/ports.py"
    assert len(_protocol_classes(PORTS)) >= 10


def test_only_the_composition_root_and_entry_points_build_adapters():
    """Application code never names an adapter class; the composition root does (import-linter checks modules)."""
    adapters = ("MongoWarehouse(", "QdrantFeatureStore(", "EdgeFeatureStore(", "LLMClient(", "BrowserSession(")
    offenders = []
    for path in sorted((PACKAGE / "application").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.name}: {name}" for name in adapters if name in text]
    assert offenders == []
