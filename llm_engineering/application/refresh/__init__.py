"""The twin refresh (issue #22): what changed in the authors' writing since the last completed refresh, and the
refresh's own config and report. The pipeline that composes the other pipelines' steps is `pipelines/twin_refresh.py`;
serving switches and the run ledger are adapters (`infrastructure/serving`, `infrastructure/refresh_ledger.py`)."""
