"""What a run reports: one row per asset, plus the flow run it happened in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from prefect_assets.assets.keys import AssetKey

Outcome = Literal["materialized", "failed", "skipped", "fresh"]


@dataclass(frozen=True)
class AssetResult:
    """One asset's outcome in a run.

    Attributes:
        key: the asset.
        status: ``materialized``, ``failed``, ``skipped`` (an upstream failed or is missing) or
            ``fresh`` (``stale_only`` and nothing changed).
        duration: seconds spent running the asset (0 when it did not run).
        reason: why it failed or was skipped, one line.
        record: the materialization record written, when materialized.
        attempts: how many times the asset ran in this run (more than 1 after retries; 0
            when it never ran).
    """

    key: AssetKey
    status: Outcome
    duration: float = 0.0
    reason: str | None = None
    record: Any = None
    attempts: int = 0


@dataclass
class MaterializeResult:
    """Every selected asset's outcome, in dependency order, and the flow run's final state."""

    assets: list[AssetResult] = field(default_factory=list)
    flow_run_id: str | None = None
    state: str | None = None

    @property
    def success(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[AssetResult]:
        return [r for r in self.assets if r.status == "failed"]

    def by_status(self, status: Outcome) -> list[AssetKey]:
        return [r.key for r in self.assets if r.status == status]

    def __getitem__(self, key: AssetKey | str) -> AssetResult:
        wanted = AssetKey.parse(key)
        for row in self.assets:
            if row.key == wanted:
                return row
        raise KeyError(str(wanted))

    def summary_rows(self) -> list[dict[str, Any]]:
        """Plain rows for tables and the Prefect artifact."""
        rows = []
        for r in self.assets:
            rec = r.record
            rows.append({
                "asset": str(r.key),
                "status": r.status,
                "seconds": round(r.duration, 3),
                "rows": getattr(rec, "rows", None),
                "bytes": getattr(rec, "bytes", None),
                "data_version": getattr(rec, "data_version", None),
                "attempts": r.attempts,
                "reason": r.reason or "",
            })
        return rows
