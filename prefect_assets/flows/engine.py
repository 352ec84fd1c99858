"""The scheduler inside a flow run: submit each asset when its upstream assets are done.

:mod:`graphlib` hands out assets whose upstream assets are finished. An asset whose upstream
failed or was skipped is *skipped* and never submitted (Prefect would otherwise leave it
Pending forever); one whose upstream outside the selection was never materialized *fails*
without running; with ``stale_only`` an asset still fresh is reported
*fresh* and not run. Everything else becomes one Prefect task run on the flow's task runner.
"""

from __future__ import annotations

import graphlib
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect.futures import PrefectFuture
from prefect.results import ResultRecord, ResultRecordMetadata

from prefect_assets.assets.keys import AssetKey, check_partition_key
from prefect_assets.assets.selection import select, upstream
from prefect_assets.assets.versions import FRESH, AssetStatus, asset_status, graph_status
from prefect_assets.errors import AssetsError, did_you_mean
from prefect_assets.flows.results import AssetResult, MaterializeResult
from prefect_assets.flows.tasks import AssetRun, Sealed, asset_task, asset_uri

if TYPE_CHECKING:
    from prefect_assets.definitions import Definitions

#: Called with ``("running", key, None)`` when an asset is submitted and
#: ``("done", key, AssetResult)`` when its outcome is known.
EventCallback = Callable[[str, AssetKey, "AssetResult | None"], None]


@dataclass(frozen=True)
class RunPlan:
    """A checked selection, ready to run: the keys in order and each asset's :class:`AssetRun`."""

    keys: list[AssetKey]
    runs: Mapping[AssetKey, AssetRun]
    partition: str | None = None
    stale_only: bool = False


def plan_run(
    defs: Definitions,
    select_expr: str | None = None,
    *,
    partition: str | None = None,
    stale_only: bool = False,
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunPlan:
    """Resolve the selection and validate each asset's config before anything runs.

    Raises:
        AssetsError: an unknown selection, invalid asset config, or storage that refuses the
            credentials (see :meth:`Definitions.check_storage`); nothing has been written.
    """
    keys = select(defs.graph, select_expr)
    if not keys:
        raise AssetsError(f"selection {select_expr!r} matches no assets; see: prefect-assets list")
    if partition is not None:
        _check_partition_fits(defs, keys, partition)
    config = dict(config or {})
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
    return RunPlan(keys, runs, partition, stale_only)


def fresh_without_a_run(defs: Definitions, plan: RunPlan) -> MaterializeResult | None:
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


def execute_plan(defs: Definitions, plan: RunPlan, on_event: EventCallback | None = None) -> MaterializeResult:
    """Run the plan inside the current flow run and report every asset's outcome."""
    return _Scheduler(defs, plan, on_event or (lambda *_: None)).run()


@dataclass
class _Scheduler:
    defs: Definitions
    plan: RunPlan
    emit: EventCallback
    outcomes: dict[AssetKey, AssetResult] = field(default_factory=dict)
    futures: dict[AssetKey, PrefectFuture] = field(default_factory=dict)
    started: dict[AssetKey, float] = field(default_factory=dict)
    retries: dict[AssetKey, int] = field(default_factory=dict)

    def run(self) -> MaterializeResult:
        graph = self.defs.graph
        selected = set(self.plan.keys)
        outside = {up for key in selected for up in graph.upstream_of(key)} - selected
        to_read = upstream(graph, selected) if self.plan.stale_only else outside
        self.defs.clean_leftovers(selected)
        self.records = self.defs.read_records(to_read)
        # Data deleted or replaced behind our back: such an asset is not fresh, so --stale reruns
        # it and its downstream. (Other runs find out when they load it, with the fix named.)
        self.stored_statuses = self.defs.stored_data_statuses(self.records) if self.plan.stale_only else {}
        self.statuses: dict[AssetKey, AssetStatus] = (
            graph_status(graph, self.records, outside, self.stored_statuses) if self.plan.stale_only else {}
        )
        sorter = graphlib.TopologicalSorter({k: graph.upstream_of(k) & selected for k in self.plan.keys})
        sorter.prepare()
        finished: queue.Queue[AssetKey] = queue.Queue()
        while sorter.is_active():
            resolved_now = False
            for key in sorted(sorter.get_ready()):
                verdict = self._verdict_without_running(key)
                if verdict is not None:
                    self._finish(verdict)
                    sorter.done(key)
                    resolved_now = True
                else:
                    self._submit(key).add_done_callback(lambda _, key=key: finished.put(key))
            if not resolved_now:
                sorter.done(self._collect(finished.get()))
        return MaterializeResult([self.outcomes[k] for k in self.plan.keys])

    def _verdict_without_running(self, key: AssetKey) -> AssetResult | None:
        node = self.defs.graph.nodes[key]
        for up in sorted(node.upstream):
            outcome = self.outcomes.get(up)
            if outcome is not None and outcome.status in ("failed", "skipped"):
                return AssetResult(key, "skipped", reason=f"upstream '{up}' {outcome.status}")
            if outcome is None and self.records.get(up) is None and up not in self.plan.runs:
                # Nothing ran, but the user asked for this asset and cannot have it: a failure
                # (exit 1, flow run Failed), with the selection that would work.
                return AssetResult(
                    key, "failed",
                    reason=f"upstream '{up}' was never materialized; select it too: --select +{key}",
                )
        if self.plan.stale_only and key in self.stored_statuses:
            return None
        if self.plan.stale_only:
            status = asset_status(node, self.records.get(key), self.records, self.statuses)
            if status.state == "fresh":
                self.statuses[key] = FRESH
                return AssetResult(key, "fresh", reason="code and inputs unchanged")
        return None

    def _submit(self, key: AssetKey) -> PrefectFuture:
        graph = self.defs.graph
        run = self.plan.runs[key]
        ups = sorted(graph.upstream_of(key))
        upstream_uris = [asset_uri(self.defs.io_manager_for(up), up, self.defs.name) for up in ups]
        task = asset_task(run, self.defs.defaults, upstream_uris)
        self.retries[key] = task.retries
        upstream_records = {str(up): self.records.get(up) for up in ups}
        future = task.submit(
            Sealed(run), Sealed(upstream_records), wait_for=[self.futures[up] for up in ups if up in self.futures]
        )
        self.futures[key] = future
        self.started[key] = time.perf_counter()
        self.emit("running", key, None)
        return future

    def _collect(self, key: AssetKey) -> AssetKey:
        elapsed = time.perf_counter() - self.started[key]
        value = _task_value(self.futures[key])
        if isinstance(value, BaseException):
            # The attempt that failed, as the task saw it; a run the task never reported on (a
            # crash) used at most all of them.
            attempts = getattr(value, "prefect_assets_attempt", None) or self.retries[key] + 1
            self._finish(AssetResult(key, "failed", elapsed, reason=_one_line(value), attempts=attempts))
        else:
            record = value.record
            self.records[key] = record
            self.statuses[key] = FRESH
            self._finish(AssetResult(
                key, "materialized", record.duration_seconds or elapsed, record=record, attempts=value.attempts,
            ))
        return key

    def _finish(self, result: AssetResult) -> None:
        self.outcomes[result.key] = result
        self.emit("done", result.key, result)


def _task_value(future: PrefectFuture) -> Any:
    """What a finished task returned (or raised), read from its final state in memory.

    ``PrefectFuture.result()`` runs a coroutine on Prefect's event-loop thread for every call,
    which slows this scheduler thread down on every asset once that loop is busy with the run's
    events. A task run without result persistence keeps its value in the final
    state it hands back, so we read it there and fall back to ``result()`` for anything else.
    """
    future.wait()
    data = future.state.data
    if isinstance(data, ResultRecord):
        return data.result
    if data is None or isinstance(data, ResultRecordMetadata):
        return future.result(raise_on_failure=False)
    return data


def _loading_io_manager(defs: Definitions, key: AssetKey, up: AssetKey):
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


def _check_partition_fits(defs: Definitions, keys: list[AssetKey], partition: str) -> None:
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
