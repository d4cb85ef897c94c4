"""What one refresh did, as the ledger records it and the command prints it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from llm_engineering.application.tables import format_key_values


class RefreshReport(BaseModel):
    outcome: str = Field(description="nothing_new | promoted | not_promoted")
    authors: list[str] = Field(default_factory=list)
    changes: dict[str, int] = Field(default_factory=dict)
    dataset_version: str | None = None
    dataset_llm_calls: dict[str, int] = Field(default_factory=dict, description="generations asked of the LLM")
    dataset_cache_hits: dict[str, int] = Field(default_factory=dict, description="generations re-used from cache")
    candidate: str | None = Field(default=None, description="the version trained by this refresh")
    production_before: str | None = None
    production_after: str | None = None
    decision: dict[str, Any] = Field(default_factory=dict, description="the gate: promote, deciding rule, reason")
    evaluation_report: str | None = None
    serving: dict[str, Any] = Field(default_factory=dict, description="what the serving side did")

    def summary_rows(self) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = [("outcome", self.outcome), ("authors", ", ".join(self.authors) or "all")]
        rows.append(("documents", ", ".join(f"{k} {v}" for k, v in self.changes.items())))
        if self.dataset_version:
            calls = sum(self.dataset_llm_calls.values())
            hits = sum(self.dataset_cache_hits.values())
            rows += [("dataset", self.dataset_version), ("LLM generations", f"{calls} new, {hits} from cache")]
        if self.candidate:
            rows.append(("candidate", self.candidate))
            verdict = "promote" if self.decision.get("promote") else "keep production"
            rule, reason = self.decision.get("deciding_rule") or "", self.decision.get("reason") or ""
            rows.append(("gate", f"{verdict}: {rule} {reason}".strip()))
        rows.append(("production", f"{self.production_before or 'none'} -> {self.production_after or 'none'}"))
        if self.serving:
            rows.append(("serving", self.serving.get("summary") or self.serving))
        if self.evaluation_report:
            rows.append(("evaluation report", self.evaluation_report))
        return rows

    def summary_table(self) -> str:
        return format_key_values(self.summary_rows())
