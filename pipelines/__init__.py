"""ZenML pipeline definitions: wiring only, no logic."""
