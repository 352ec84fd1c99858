"""The scheduler inside a flow run: submit each asset when its upstream assets are done.

:mod:`graphlib` hands out assets whose upstream assets are finished. An asset whose upstream
failed or was skipped is *skipped* and never submitted (Prefect would otherwise leave it
Pending forever); one whose upstream outside the selection was never materialized *fails*
without running; with ``stale_only`` an asset still fresh is reported
*fresh* and not run. Everything else becomes one Prefect task run on the flow's task runner.
"""

from __future__ import annotations

import gc
import graphlib
import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.results import ResultRecord, ResultRecordMetadata

from prefect_assets.assets.keys import AssetKey
from prefect_assets.assets.selection import upstream
from prefect_assets.assets.versions import FRESH, AssetStatus, asset_status, graph_status
from prefect_assets.flows.killed_runs import PROCESS_TAG, SCOPE_TAG
from prefect_assets.flows.plan import RunPlan
from prefect_assets.flows.results import AssetResult, MaterializeResult
from prefect_assets.flows.tasks import Sealed, asset_task, asset_uri

if TYPE_CHECKING:
    from prefect_assets.core_definitions import CoreDefinitions

#: Tags that name the process owning a flow run (see :mod:`prefect_assets.flows.killed_runs`).
OWNER_TAG_PREFIXES = (SCOPE_TAG, PROCESS_TAG)

#: Called with ``("running", key, None)`` when an asset is submitted and
#: ``("done", key, AssetResult)`` when its outcome is known.
EventCallback = Callable[[str, AssetKey, "AssetResult | None"], None]


def execute_plan(defs: CoreDefinitions, plan: RunPlan, on_event: EventCallback | None = None) -> MaterializeResult:
    """Run the plan inside the current flow run and report every asset's outcome."""
    with _heap_frozen(), _owner_tags_off_task_events():
        return _Scheduler(defs, plan, on_event or (lambda *_: None)).run()


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """Inside the block, the garbage collector leaves alone every object that existed before it.

    A run allocates several objects per asset on every thread (Prefect's states, events, run
    contexts), so the collector runs often, and each full collection walked the whole heap of
    the process (Prefect's modules, the definitions) although nothing there becomes garbage
    during a run. ``gc.freeze`` sets those objects aside; ``gc.unfreeze`` hands them back to the
    collector when the run ends, so nothing is kept alive longer than it would have been.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _owner_tags_off_task_events() -> Iterator[None]:
    """Inside the block, the flow run as task runs see it does not carry our owner tags.

    Prefect lists the flow run's tags as related resources of every event a task run emits
    (several per asset), and the server stores each of them; the owner tags
    (:func:`~prefect_assets.flows.killed_runs.owner_tags`) only need to be on the flow run
    itself, where they stay. The user's own tags are kept.
    """
    context = FlowRunContext.get()
    flow_run = getattr(context, "flow_run", None)
    if flow_run is None or not any(tag.startswith(OWNER_TAG_PREFIXES) for tag in flow_run.tags):
        yield
        return
    kept = [tag for tag in flow_run.tags if not tag.startswith(OWNER_TAG_PREFIXES)]
    with context.model_copy(update={"flow_run": flow_run.model_copy(update={"tags": kept})}):
        yield


@dataclass
class _Scheduler:
    defs: CoreDefinitions
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
