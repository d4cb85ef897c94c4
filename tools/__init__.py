"""Command-line entry points (run with `python -m tools.<name>` or the `poe` tasks in pyproject.toml)."""
