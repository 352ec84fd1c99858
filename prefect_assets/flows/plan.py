"""Plan a run before any Prefect flow exists: check the input, decide what would run and why.

Everything here reads the project and its records only; Prefect is not imported, so a mistake
in the selection, the config or a partition is reported at once, and a ``--stale`` run with
nothing to do or a ``--dry-run`` ends without paying for Prefect's start.

- :func:`prepare_run` checks a run's :class:`~prefect_assets.flows.options.RunOptions` (the
  selection, partition, config and runner) and prepares each asset's
  :class:`~prefect_assets.flows.compute.AssetRun`: the :class:`RunPlan` a flow executes. Every
  run goes through it: ``materialize()``, the CLI and the deployable flow.
- :func:`fresh_without_a_run` answers a ``stale_only`` plan whose assets are all fresh.
- :func:`preview` says, asset by asset, what a run of the plan would do and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prefect_assets.assets.keys import AssetKey, check_partition_key
from prefect_assets.assets.selection import select, upstream
from prefect_assets.assets.versions import AssetStatus, graph_status
from prefect_assets.errors import AssetsError, did_you_mean
from prefect_assets.flows.compute import AssetRun
from prefect_assets.flows.options import RunOptions
from prefect_assets.flows.results import AssetResult, MaterializeResult
from prefect_assets.runner_registry import RunnerConfig, runner_config

if TYPE_CHECKING:
    from prefect_assets.core_definitions import CoreDefinitions


@dataclass(frozen=True)
class RunPlan:
    """A checked run, ready to execute: the keys in order, each asset's :class:`AssetRun`, and
    the runner that executes them."""

    keys: list[AssetKey]
    runs: Mapping[AssetKey, AssetRun]
    options: RunOptions
    runner: RunnerConfig

    @property
    def partition(self) -> str | None:
        return self.options.partition

    @property
    def stale_only(self) -> bool:
        return self.options.stale_only


def prepare_run(defs: CoreDefinitions, options: RunOptions | None = None) -> RunPlan:
    """Check ``options`` against the project and prepare every selected asset's run.

    Raises:
        AssetsError: an unknown selection, a partition no selected asset has, invalid asset
            config, a runner that does not fit, or storage that refuses the credentials (see
            :meth:`CoreDefinitions.check_storage`); nothing has been written.
    """
    options = options or RunOptions()
    keys = select(defs.graph, options.select)
    if not keys:
        raise AssetsError(f"selection {options.select!r} matches no assets; see: prefect-assets list")
    runner = runner_config(defs.runner, options.runner, options.max_workers)
    partition = options.partition
    if partition is not None:
        _check_partition_fits(defs, keys, partition)
    config = dict(options.config or {})
    unknown = sorted(set(config) - {str(k) for k in defs.graph.nodes})
    if unknown:
        raise AssetsError(f"config given for unknown assets {unknown}; use asset keys such as {str(keys[0])!r}")
    runs = {}
    for key in keys:
        node = defs.graph.nodes[key]
        io_manager = defs.io_manager_for(key)
        runs[key] = AssetRun(
            node=node,
            io_manager=io_manager,
            record_store=defs.record_store_for(key),
            input_io_managers={up: _loading_io_manager(defs, key, up) for up in node.inputs.values()},
            partition_key=partition,
            config=_asset_config(node.definition, config.get(str(key))),
            project_name=defs.name,
            timeout_seconds=_first_set(node.definition.timeout_seconds, defs.defaults.timeout_seconds),
        )
    # Wrong credentials or a missing bucket: one line now, not a failed asset per key later.
    defs.check_storage({*keys, *(up for key in keys for up in defs.graph.upstream_of(key))}, written=keys)
    return RunPlan(keys, runs, options, runner)


def fresh_without_a_run(defs: CoreDefinitions, plan: RunPlan) -> MaterializeResult | None:
    """For a ``stale_only`` plan whose every asset is fresh: the result, with no flow run needed.

    Statuses are computed as the run would compute them (records settled, stored data checked
    against them), so nothing that a run would re-materialize is reported fresh. None when
    anything is missing or stale, or the plan is not ``stale_only``.
    """
    if not plan.stale_only:
        return None
    records = defs.read_records(upstream(defs.graph, set(plan.keys)))
    statuses = graph_status(defs.graph, records, plan.keys, defs.stored_data_statuses(records))
    if any(statuses[key].state != "fresh" for key in plan.keys):
        return None
    return MaterializeResult([AssetResult(key, "fresh", reason="code and inputs unchanged") for key in plan.keys])



@dataclass(frozen=True)
class PlannedAsset:
    """What a run would do with one selected asset, and why: ``run`` it, leave it ``fresh``
    (``stale_only``), ``skip`` it (an upstream fails or is skipped) or ``fail`` it unrun."""

    key: AssetKey
    action: Literal["run", "fresh", "skip", "fail"]
    reason: str


def preview(defs: CoreDefinitions, plan: RunPlan) -> list[PlannedAsset]:
    """What a run of ``plan`` would do, asset by asset, in the plan's order, without running it.

    The same rules as the scheduler, decided from the records as they are now: an asset whose
    upstream outside the selection was never materialized would fail, and its downstream be
    skipped; with ``stale_only`` fresh assets are skipped. A stale asset whose only cause is a
    stale upstream may turn out fresh during the run, if that upstream's new data equals its old.
    """
    graph = defs.graph
    selected = set(plan.keys)
    records = defs.read_records(upstream(graph, selected))
    statuses = graph_status(graph, records, plan.keys, defs.stored_data_statuses(records))
    decided: dict[AssetKey, PlannedAsset] = {}
    for key in plan.keys:
        decided[key] = _planned(key, graph.upstream_of(key), selected, records, statuses[key], plan, decided)
    return [decided[key] for key in plan.keys]


def _planned(
    key: AssetKey,
    ups: set[AssetKey],
    selected: set[AssetKey],
    records: Mapping[AssetKey, Any],
    status: AssetStatus,
    plan: RunPlan,
    decided: Mapping[AssetKey, PlannedAsset],
) -> PlannedAsset:
    for up in sorted(ups):
        before = decided.get(up)
        if before is not None and before.action in ("fail", "skip"):
            return PlannedAsset(key, "skip", f"upstream '{up}' would {'fail' if before.action == 'fail' else 'be skipped'}")
        if up not in selected and records.get(up) is None:
            return PlannedAsset(key, "fail", f"upstream '{up}' was never materialized; select it too: --select +{key}")
    if plan.partition is not None:
        return PlannedAsset(key, "run", f"partition {plan.partition}")
    if status.state == "fresh":
        if plan.stale_only:
            return PlannedAsset(key, "fresh", "code and inputs unchanged")
        return PlannedAsset(key, "run", "fresh, selected (--stale would skip it)")
    return PlannedAsset(key, "run", str(status))


def _loading_io_manager(defs: CoreDefinitions, key: AssetKey, up: AssetKey):
    io_manager = defs.io_manager_for(up)
    if io_manager is None:
        raise AssetsError(
            f"asset '{key}' loads '{up}', but '{up}' has io_manager=None and stores nothing; "
            f"use deps=['{up}'] to order without loading"
        )
    return io_manager


def _asset_config(definition, values: Mapping[str, Any] | None) -> Any:
    schema = definition.config_schema
    if schema is None:
        if values:
            raise AssetsError(f"asset '{definition.key}' takes no config; declare @asset(config=MyConfig) to accept it")
        return None
    fields = getattr(schema, "model_fields", {})
    accepted = set(fields) | {f.alias for f in fields.values() if getattr(f, "alias", None)}
    unknown = sorted(set(values or {}) - accepted)
    if unknown and getattr(schema, "model_config", {}).get("extra") != "allow":
        # pydantic ignores extra fields by default: a misspelt field would silently keep its default.
        hints = "".join(did_you_mean(name, list(fields)) for name in unknown)
        raise AssetsError(
            f"asset '{definition.key}' config: unknown field(s) {', '.join(map(repr, unknown))}{hints}; "
            f"{schema.__name__} has: {', '.join(fields) or 'no fields'}"
        )
    try:
        return schema.model_validate(dict(values or {}))
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, reported as one line
        errors = getattr(exc, "errors", lambda: [])()
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors) or str(exc)
        raise AssetsError(f"asset '{definition.key}' config: {detail}; pass valid values with --config") from None


def _check_partition_fits(defs: CoreDefinitions, keys: list[AssetKey], partition: str) -> None:
    """A partition key must be storable, and meant for an asset of the selection.

    Checked when the run is planned, so a bad value never reaches an asset function, and a
    partition given to unpartitioned assets is not silently ignored.
    """
    check_partition_key(partition)
    if not any(defs.definition(key).partitions is not None for key in keys):
        raise AssetsError(
            f"--partition {partition!r} given, but no asset in the selection is partitioned; "
            "drop --partition or select an asset declared with @asset(partitions=...)"
        )


def _first_set(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
