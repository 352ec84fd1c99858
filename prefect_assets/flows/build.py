"""From definitions to a Prefect flow, and ``materialize()`` to run one in-process.

``build_flow`` checks the selection and config first (a bad one raises before any run), then
returns a Prefect flow whose body runs the plan on the configured task runner. A run in which
any asset failed returns a Failed state, so Prefect shows the flow run Failed, not Completed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

from prefect import Flow
from prefect.artifacts import create_table_artifact
from prefect.states import Failed, State

from prefect_assets.assets.decorator import AssetDefinition
from prefect_assets.definitions import Definitions
from prefect_assets.flows.concurrency import prepare_concurrency_limits
from prefect_assets.flows.engine import EventCallback, RunPlan, execute_plan, plan_run
from prefect_assets.flows.results import MaterializeResult
from prefect_assets.flows.runners import (
    api_shared_with_workers,
    make_task_runner,
    override_runner,
)
from prefect_assets.flows.warm_start import start_early


def build_flow(
    defs: Definitions,
    select: str | None = None,
    *,
    partition: str | None = None,
    stale_only: bool = False,
    runner: str | None = None,
    max_workers: int | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    on_event: EventCallback | None = None,
    results: list[MaterializeResult] | None = None,
) -> Flow:
    """A Prefect flow that materializes ``select`` of ``defs``.

    Args:
        defs: the definitions to run.
        select: a selection expression (default: everything).
        partition: the partition key to materialize.
        stale_only: run only missing and stale assets (and what becomes stale on the way).
        runner: override the configured runner type (``thread``, ``process``, ``dask``, ``ray``).
        max_workers: override the runner's worker count.
        config: ``{asset key: {field: value}}`` for assets that declare ``config=``.
        on_event: called as assets start and finish (the CLI's progress bar).
        results: if given, the run's :class:`MaterializeResult` is appended to it.

    Raises:
        AssetsError: bad selection or config, before any flow run exists.

    Example:
        >>> flow = defs.to_flow("group:raw+")   # doctest: +SKIP
        >>> flow()                              # doctest: +SKIP
    """
    plan = plan_run(defs, select, partition=partition, stale_only=stale_only, config=config)
    runner_config = override_runner(defs.runner, runner, max_workers)

    # Prefect sends the flow object to every process-pool, Dask or Ray worker inside the
    # serialized run context, where its body never runs. What the body needs (a progress
    # callback that holds a console, the whole project) stays in this process.
    local = _ThisProcessOnly(defs=defs, plan=plan, on_event=on_event, results=results)

    def materialize_selection() -> Any:
        result = run_plan_in_flow(local.defs, local.plan, local.on_event)
        if local.results is not None:
            local.results.append(result)
        return final_state(result)

    return Flow(
        materialize_selection,
        name=f"materialize-{defs.name}",
        task_runner=make_task_runner(runner_config),
        description=f"Materialize {select or '*'} of {defs.name}",
        validate_parameters=False,
        persist_result=False,
    )


def materialize(
    defs_or_assets: Definitions | Iterable[AssetDefinition],
    select: str | None = None,
    **options: Any,
) -> MaterializeResult:
    """Materialize a selection in-process, through a real Prefect flow run.

    Args:
        defs_or_assets: a :class:`Definitions` or a list of assets (stored under ``./data``).
        select: selection expression; options as for :func:`build_flow`.

    Returns:
        A row per selected asset: materialized / skipped (why) / failed (error) / fresh, with
        durations, plus the flow run id and its final state name.

    Example:
        >>> result = materialize([orders, clean_orders])   # doctest: +SKIP
        >>> result.success                                  # doctest: +SKIP
        True
    """
    defs = defs_or_assets if isinstance(defs_or_assets, Definitions) else Definitions(list(defs_or_assets))
    results: list[MaterializeResult] = []
    flow = build_flow(defs, select, results=results, **options)  # bad input raises here, nothing started
    runner_config = override_runner(defs.runner, options.get("runner"), options.get("max_workers"))
    # Before the ephemeral server's start-up in api_shared_with_workers (10-20 s on a small
    # machine), so the forkserver's imports overlap it.
    start_early(runner_config)
    with api_shared_with_workers(runner_config):
        state: State = flow(return_state=True)
    if not results:  # the flow failed before our body finished: surface Prefect's own error
        state.result()
        raise RuntimeError(f"flow run ended {state.name} without a result")
    result = results[0]
    result.state = state.name
    result.flow_run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    return result


def run_plan_in_flow(defs: Definitions, plan: RunPlan, on_event: EventCallback | None = None) -> MaterializeResult:
    """Prepare the concurrency limits, execute ``plan`` in the current flow run and attach the
    summary table artifact."""
    prepare_concurrency_limits(defs.concurrency_limits, (run.node.definition for run in plan.runs.values()))
    result = execute_plan(defs, plan, on_event)
    create_table_artifact(
        table=result.summary_rows(),
        key="asset-materializations",
        description=_describe(result),
    )
    return result


def final_state(result: MaterializeResult) -> Any:
    """What the flow returns: a Failed state naming the failed assets, else the summary."""
    if result.failed:
        return Failed(message=_describe(result))
    return _describe(result)


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
