"""Versions and staleness: what made each materialization, and whether it is still current.

An asset's code version (see :mod:`~prefect_assets.assets.code_version`), the data versions of
its inputs and its own data version (:func:`content_version`) are compared with its latest
record to say whether it is missing, stale (and why) or fresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from prefect_assets.assets.keys import AssetKey

if TYPE_CHECKING:
    from prefect_assets.assets.graph import AssetGraph, AssetNode


def content_version(data: bytes | memoryview) -> str:
    """The data version of stored bytes: their SHA-256, shortened to 16 hex digits."""
    return hashlib.sha256(data).hexdigest()[:16]


class VersionRecord(Protocol):
    """What staleness needs from a materialization record (see ``io_managers.records``)."""

    code_version: str
    data_version: str | None
    input_versions: Mapping[str, str | None]


@dataclass(frozen=True)
class AssetStatus:
    """``missing``, ``stale`` (with the cause) or ``fresh``."""

    state: Literal["missing", "stale", "fresh"]
    cause: str | None = None

    def __str__(self) -> str:
        return f"{self.state} ({self.cause})" if self.cause else self.state


MISSING = AssetStatus("missing", "never materialized")
FRESH = AssetStatus("fresh")


def asset_status(
    node: AssetNode,
    record: VersionRecord | None,
    upstream_records: Mapping[AssetKey, VersionRecord | None],
    upstream_status: Mapping[AssetKey, AssetStatus],
) -> AssetStatus:
    """Decide one asset's status from its record and its upstream assets' records and statuses.

    An asset is stale when its code version changed, its set of upstream assets changed, an
    upstream asset is itself stale or missing, or an upstream's data version differs from the
    one this asset was computed from. The first cause found is named.
    """
    if record is None:
        return MISSING
    if record.code_version != node.definition.code_version:
        return AssetStatus("stale", f"code version changed {record.code_version} -> {node.definition.code_version}")
    recorded = set(record.input_versions)
    current = {str(k) for k in node.upstream}
    if recorded != current:
        return AssetStatus("stale", f"dependencies changed: {sorted(recorded)} -> {sorted(current)}")
    for up in sorted(node.upstream):
        status = upstream_status.get(up)
        if status is not None and status.state != "fresh":
            return AssetStatus("stale", f"upstream '{up}' is {status.state}")
        up_record = upstream_records.get(up)
        if up_record is None:
            return AssetStatus("stale", f"upstream '{up}' is missing")
        if up_record.data_version != record.input_versions[str(up)]:
            return AssetStatus("stale", f"upstream '{up}' has new data")
    return FRESH


def graph_status(
    graph: AssetGraph,
    records: Mapping[AssetKey, VersionRecord | None],
    keys: Iterable[AssetKey] | None = None,
    known: Mapping[AssetKey, AssetStatus] | None = None,
) -> dict[AssetKey, AssetStatus]:
    """Status of ``keys`` (default: all), computed upstream first so staleness propagates.

    ``records`` must hold the record (or ``None``) of every key and of all its ancestors
    (:func:`~prefect_assets.assets.selection.upstream` gives that set). ``known`` holds
    statuses decided from outside the records, such as data deleted behind our back: they win
    over what the record says, and propagate downstream like any other.
    """
    from prefect_assets.assets.selection import upstream  # selection imports this module's siblings

    known = known or {}
    wanted = set(graph.nodes) if keys is None else set(keys)
    statuses: dict[AssetKey, AssetStatus] = {}
    for key in graph.toposort(upstream(graph, wanted)):
        statuses[key] = known.get(key) or asset_status(graph.nodes[key], records.get(key), records, statuses)
    return {k: s for k, s in statuses.items() if k in wanted}
