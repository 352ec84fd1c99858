"""From definitions to a Prefect flow, and ``materialize()`` to run one in-process.

``build_flow`` prepares the run first (:func:`~prefect_assets.flows.plan.prepare_run`: a bad
option raises before any run), then returns a Prefect flow whose body runs the plan on the
run's task runner. A run in which
any asset failed returns a Failed state, so Prefect shows the flow run Failed, not Completed.

``materialize`` runs the same body as an ``async`` flow, which returns up to a second sooner
(see ``build_flow``'s ``asynchronous``); ``Definitions.to_flow`` hands out the sync flow.

A killed ``materialize`` leaves nothing behind: the embedded server it starts dies with it
(:mod:`.embedded_server`), and its flow run, tagged with the process that runs it, is marked
``Crashed`` by the next ``materialize`` on the same machine (:mod:`.killed_runs`).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from prefect import Flow, get_client, tags
from prefect.client.schemas.actions import ArtifactCreate
from prefect.context import FlowRunContext, SyncClientContext
from prefect.states import Failed, State

from prefect_assets.assets.decorator import AssetDefinition
from prefect_assets.core_definitions import CoreDefinitions
from prefect_assets.flows.api import require_reachable_api
from prefect_assets.flows.concurrency import prepare_concurrency_limits
from prefect_assets.flows.embedded_server import embedded_server_in_use, start_embedded_server, wait_until_recorded
from prefect_assets.flows.engine import EventCallback, execute_plan
from prefect_assets.flows.killed_runs import (
    crash_runs_of_ended_processes_and_report,
    owner_tags,
    without_owner_tags,
)
from prefect_assets.flows.options import RunOptions
from prefect_assets.flows.plan import RunPlan, fresh_without_a_run, prepare_run
from prefect_assets.flows.results import MaterializeResult
from prefect_assets.flows.runners.backend import backend


def build_flow(
    defs: CoreDefinitions,
    select: str | None = None,
    *,
    on_event: EventCallback | None = None,
    results: list[MaterializeResult] | None = None,
    asynchronous: bool = False,
    plan: RunPlan | None = None,
    **options: Any,
) -> Flow:
    """A Prefect flow that materializes ``select`` of ``defs``.

    Args:
        defs: the definitions to run.
        select: a selection expression (default: everything).
        options: the other run options (:class:`~prefect_assets.flows.options.RunOptions`:
            ``partition``, ``stale_only``, ``runner``, ``max_workers``, ``config``).
        on_event: called as assets start and finish (the CLI's progress bar).
        results: if given, the run's :class:`MaterializeResult` is appended to it.
        asynchronous: build an ``async`` flow, whose body runs the plan in a thread. Prefect's
            engine ends a sync flow run by joining its heartbeat thread, which sleeps in
            one-second steps, so every sync run is rounded up to the next whole second; an async
            run is not. :func:`materialize` uses it; the default stays a sync flow, which a user
            calls as ``flow()``.
        plan: the run already prepared by :func:`~prefect_assets.flows.plan.prepare_run`,
            instead of ``select`` and ``options``.

    Raises:
        AssetsError: a bad option (selection, config, runner), before any flow run exists.

    Example:
        >>> flow = defs.to_flow("group:raw+")   # doctest: +SKIP
        >>> flow()                              # doctest: +SKIP
    """
    plan = _prepared(defs, plan, select, options, "to_flow()")

    # Prefect sends the flow object to every process-pool, Dask or Ray worker inside the
    # serialized run context, where its body never runs. What the body needs (a progress
    # callback that holds a console, the whole project) stays in this process.
    local = _ThisProcessOnly(defs=defs, plan=plan, on_event=on_event, results=results)

    def materialize_selection() -> Any:
        result = run_plan_in_flow(local.defs, local.plan, local.on_event)
        if local.results is not None:
            local.results.append(result)
        return final_state(result)

    async def materialize_selection_async() -> Any:
        # In a thread, never on the flow's event loop: the body blocks until every asset is
        # done, and task threads call back into Prefect's loops meanwhile. The thread gets a
        # copy of this context: the flow run context that task submission needs.
        return await asyncio.to_thread(_in_sync_client_context, materialize_selection)

    return Flow(
        materialize_selection_async if asynchronous else materialize_selection,
        name=f"materialize-{defs.name}",
        task_runner=backend(plan.runner).task_runner(plan.runner),
        description=f"Materialize {plan.options.select or '*'} of {defs.name}",
        validate_parameters=False,
        persist_result=False,
    )


def materialize(
    defs_or_assets: CoreDefinitions | Iterable[AssetDefinition],
    select: str | None = None,
    *,
    on_event: EventCallback | None = None,
    on_recording: Callable[[int, int], None] | None = None,
    plan: RunPlan | None = None,
    **options: Any,
) -> MaterializeResult:
    """Materialize a selection in-process, through a real Prefect flow run.

    On Prefect's embedded server (no ``PREFECT_API_URL``), which stops with this process, the
    call returns once the server has recorded every task run of the flow run (a warning says
    how many it had not when it stopped making progress); ``on_recording(recorded, expected)``
    hears the count meanwhile.

    Args:
        defs_or_assets: a :class:`CoreDefinitions` or a list of assets (stored under ``./data``).
        select: selection expression; ``options`` and ``on_event`` as for :func:`build_flow`.
        on_recording: hears ``(recorded, expected)`` while the embedded server catches up.
        plan: the run already prepared by :func:`~prefect_assets.flows.plan.prepare_run` and
            found to need a flow run (the CLI prepares it before it imports Prefect), instead
            of ``select`` and ``options``.

    Returns:
        A row per selected asset: materialized / skipped (why) / failed (error) / fresh, with
        durations, plus the flow run id and its final state name. With ``stale_only`` and every
        selected asset fresh, no flow run is created: the rows say fresh, and the flow run id
        and state are None.

    Example:
        >>> result = materialize([orders, clean_orders])   # doctest: +SKIP
        >>> result.success                                  # doctest: +SKIP
        True
    """
    defs = defs_or_assets if isinstance(defs_or_assets, CoreDefinitions) else CoreDefinitions(list(defs_or_assets))
    results: list[MaterializeResult] = []
    prepared_by_caller = plan is not None
    plan = _prepared(defs, plan, select, options, "materialize()")  # bad input raises here
    if not prepared_by_caller and plan.partition is None:
        nothing_to_do = fresh_without_a_run(defs, plan)
        if nothing_to_do is not None:
            return nothing_to_do
    flow = build_flow(defs, plan=plan, on_event=on_event, results=results, asynchronous=True)
    require_reachable_api()
    runner = backend(plan.runner)
    # Before the embedded server's start-up, so what the workers need starts meanwhile.
    runner.warm_up(plan.runner)
    start_embedded_server()  # if used: the one Prefect would start, stopped if we are killed
    # One API client for the rest of the call: the housekeeping, the flow body and its task
    # threads share it (each client costs an SSL context and a connection pool).
    with SyncClientContext.get_or_create():
        # Housekeeping for earlier runs, not a step of this one: it talks to the server while
        # this run starts, and is done (its notes logged) before the run's result is returned.
        housekeeping = _started_in_a_thread(crash_runs_of_ended_processes_and_report)
        try:
            with runner.around_run(plan.runner), tags(*owner_tags()):
                state: State = _run_to_completion(flow(return_state=True))
        finally:
            housekeeping.join()
        if not results:  # the flow failed before our body finished: surface Prefect's own error
            state.result()
            raise RuntimeError(f"flow run ended {state.name} without a result")
        result = results[0]
        result.state = state.name
        result.flow_run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
        if result.flow_run_id and embedded_server_in_use():
            _wait_until_recorded(result, on_recording)
    return result


def _wait_until_recorded(result: MaterializeResult, on_progress: Callable[[int, int], None] | None) -> None:
    """Keep the embedded server until it has recorded the run's task runs: one per asset that
    ran (skipped assets are never submitted)."""
    expected = sum(1 for row in result.assets if row.status in ("materialized", "failed"))
    wait_until_recorded(result.flow_run_id, expected, on_progress)


def run_plan_in_flow(defs: CoreDefinitions, plan: RunPlan, on_event: EventCallback | None = None) -> MaterializeResult:
    """Prepare the concurrency limits, execute ``plan`` in the current flow run and attach the
    summary table artifact."""
    prepare_concurrency_limits(defs.concurrency_limits, (run.node.definition for run in plan.runs.values()))
    with backend(plan.runner).around_submits(plan.runner):
        result = execute_plan(defs, plan, on_event)
    _attach_summary_table(result)
    return result


def _attach_summary_table(result: MaterializeResult) -> None:
    """The run's summary as a table artifact of the current flow run (``asset-materializations``).

    What ``prefect.artifacts.create_table_artifact`` sends, through the public client: called
    from a thread of an async flow, that function would hand back a coroutine instead.
    """
    flow_run_context = FlowRunContext.get()
    flow_run = flow_run_context.flow_run if flow_run_context is not None else None
    with get_client(sync_client=True) as client:  # the run's client, when one is open
        client.create_artifact(artifact=ArtifactCreate(
            type="table",
            key="asset-materializations",
            description=_describe(result),
            data=json.dumps(result.summary_rows()),
            flow_run_id=flow_run.id if flow_run is not None else None,
        ))


def _prepared(defs: CoreDefinitions, plan: RunPlan | None, select: str | None, options: dict[str, Any], call: str) -> RunPlan:
    """``plan`` itself, or the run ``select`` and ``options`` ask for; never both."""
    if plan is None:
        return prepare_run(defs, RunOptions.parse({"select": select, **options}, call))
    if select is not None or options:
        raise TypeError(f"{call}: give a prepared plan or run options, not both")
    return plan


def final_state(result: MaterializeResult) -> Any:
    """What the flow returns: a Failed state naming the failed assets, else the summary."""
    if result.failed:
        return Failed(message=_describe(result))
    return _describe(result)


def _in_sync_client_context(body: Callable[[], Any]) -> Any:
    """Call ``body`` inside a sync Prefect client context, which the tasks it submits share.

    A sync flow's engine opens one for its whole run; an async flow's engine opens only an async
    one, so without this every asset's task run (on threads) created an API client of its own,
    with a new SSL context and connection pool. The flow run's owner tags stay off its task runs.
    """
    with SyncClientContext.get_or_create(), without_owner_tags():
        return body()


def _started_in_a_thread(body: Callable[[], Any]) -> threading.Thread:
    """``body`` started in a daemon thread with a copy of this context (Prefect's settings)."""
    thread = threading.Thread(target=contextvars.copy_context().run, args=(body,), daemon=True,
                              name="prefect-assets-housekeeping")
    thread.start()
    return thread


def _run_to_completion(coroutine: Coroutine[Any, Any, State]) -> State:
    """Run an async flow call from synchronous code, inside a running event loop too.

    With no loop running here, ``asyncio.run``. Under a running loop (a notebook, an async
    application) ``asyncio.run`` refuses, so the call gets a thread and a loop of its own, with
    a copy of this context (the settings the runner's ``around_run`` put there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefect-assets-flow") as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


class _ThisProcessOnly(SimpleNamespace):
    """Attributes that are not pickled: a copy in another process is empty."""

    def __reduce__(self):
        return (_ThisProcessOnly, ())


def _describe(result: MaterializeResult) -> str:
    counts: dict[str, int] = {}
    for row in result.assets:
        counts[row.status] = counts.get(row.status, 0) + 1
    text = ", ".join(f"{n} {status}" for status, n in counts.items())
    if result.failed:
        text += "; failed: " + ", ".join(str(r.key) for r in result.failed)
    return text
