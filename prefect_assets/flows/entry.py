"""The deployable flow: one module-level Prefect flow that materializes any project.

Prefect finds a deployment's flow by its entrypoint (``prefect_assets.flows.entry.materialize_assets``)
and imports it in a fresh process, so the flow cannot be built around a loaded project the
way :meth:`Definitions.to_flow` builds one. Instead the project location, the selection and
the run options are *parameters*, and the definitions are loaded when the run starts. That
is what ``prefect-assets serve``, ``deploy`` and a ``prefect worker`` all run.

Example:
    >>> from prefect_assets.flows.entry import materialize_assets
    >>> materialize_assets(project="examples/shop", select="+paid_orders")   # doctest: +SKIP
    '3 materialized'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import prefect.runtime
from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.states import Failed
from prefect.task_runners import TaskRunner

from prefect_assets.core_definitions import CoreDefinitions
from prefect_assets.errors import AssetsError
from prefect_assets.flows.build import final_state, run_plan_in_flow
from prefect_assets.flows.options import RunOptions
from prefect_assets.flows.plan import prepare_run
from prefect_assets.flows.runners.backend import backend
from prefect_assets.runner_registry import RunnerName

#: Partition values resolved against the run's scheduled time instead of taken literally.
PARTITION_KEYWORDS = ("latest", "yesterday")


@flow(name="materialize-assets", persist_result=False, validate_parameters=True)
def materialize_assets(
    project: str,
    select: str | None = None,
    partition: str | None = None,
    stale_only: bool = False,
    runner: RunnerName | None = None,
    max_workers: int | None = None,
    config: dict[str, dict[str, Any]] | None = None,
    timezone: str | None = None,
) -> Any:
    """Materialize ``select`` of the project at ``project``; the run ends Failed if an asset failed.

    The parameters after ``project`` are the fields of
    :class:`~prefect_assets.flows.options.RunOptions`, spelled out so that Prefect shows them
    (and deployments set them) one by one.

    Args:
        project: the folder holding ``prefect_assets.yaml`` (relative paths are taken from
            the working directory, which a deployment's pull step sets).
        select: a selection expression (default: every asset).
        partition: a partition key, or ``latest`` / ``yesterday``, resolved against the
            run's *scheduled* time so a late or retried run still does the right day.
        stale_only: run only missing and stale assets.
        runner: override the project's task runner type (``thread``, ``process``, ...).
        max_workers: override the runner's worker count.
        config: ``{asset key: {field: value}}`` for assets that declare ``config=``.
        timezone: the IANA zone in which ``yesterday`` is counted (default UTC); deployments
            pass their schedule's zone.

    Returns:
        A one-line summary, or a Failed state naming the failed assets (or the user error,
        such as an unknown selection, that stopped the run before it started).
    """
    logger = get_run_logger()
    try:
        defs = CoreDefinitions.load(project)
        options = RunOptions.parse(
            dict(select=select, partition=partition, stale_only=stale_only, runner=runner,
                 max_workers=max_workers, config=config, timezone=timezone), "parameters",
        )
        scheduled = prefect.runtime.flow_run.scheduled_start_time
        partition_key = resolve_partition(partition, scheduled, timezone)
        if partition_key != partition:
            logger.info("partition %r resolved to %r for the run scheduled at %s", partition, partition_key, scheduled)
        plan = prepare_run(defs, options.model_copy(update={"partition": partition_key}))
        runner_backend = backend(plan.runner)
        task_runner = runner_backend.task_runner(plan.runner)
    except AssetsError as exc:
        # A user mistake, not a crash: one line in the run's log and state, no traceback.
        logger.error("%s", exc)
        return Failed(message=str(exc))

    runner_backend.warm_up(plan.runner)  # what the workers need starts while the run sets up
    with runner_backend.around_run(plan.runner), task_runner, _submitting_to(task_runner):
        result = run_plan_in_flow(defs, plan)
    return final_state(result)


def resolve_partition(value: str | None, scheduled: datetime, timezone: str | None = None) -> str | None:
    """The partition key a run materializes: ``value`` itself, or a keyword resolved at ``scheduled``.

    ``yesterday`` is the day before the scheduled time, counted in ``timezone`` (default
    UTC). ``latest`` means the last *complete* partition at that time; until partitions
    definitions say how long a partition is, that is the last complete day, like
    ``yesterday``.

    Args:
        value: an explicit key, a keyword from :data:`PARTITION_KEYWORDS`, or ``None``.
        scheduled: when the run was scheduled (not when it started: a run that waited in a
            queue past midnight must still do the day it was scheduled for).
        timezone: an IANA zone name such as ``Europe/Berlin``.

    Raises:
        AssetsError: ``timezone`` is not a known zone.

    Example:
        >>> from datetime import datetime, timezone
        >>> resolve_partition("yesterday", datetime(2026, 3, 1, 1, 30, tzinfo=timezone.utc), "Europe/Berlin")
        '2026-02-28'
        >>> resolve_partition("2026-01-05", datetime(2026, 3, 1, tzinfo=timezone.utc))
        '2026-01-05'
    """
    if value not in PARTITION_KEYWORDS:
        return value
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise AssetsError(f"timezone {timezone!r} is not an IANA zone name such as 'Europe/Berlin' or 'UTC'") from None
    local = scheduled.astimezone(zone)
    return (local.date() - timedelta(days=1)).isoformat()


@contextmanager
def _submitting_to(task_runner: TaskRunner) -> Iterator[None]:
    """Make ``task_runner`` the one this flow run's tasks are submitted to.

    Prefect fixes a flow's task runner when the flow object is made, at import, but ours
    comes from the project's ``runner:`` config, known only once the run has loaded the
    project. ``Task.submit`` takes the runner from the current flow run context, so a copy
    of that context carrying the configured runner routes every asset to it. The
    alternative, an inner flow made with ``with_options(task_runner=...)``, would add a
    second flow run per run in the UI and a parent whose state must mirror the child's.
    """
    context = FlowRunContext.get()
    if context is None:
        raise RuntimeError("_submitting_to() must be called inside a flow run")
    with context.model_copy(update={"task_runner": task_runner}):
        yield


__all__ = ["PARTITION_KEYWORDS", "materialize_assets", "resolve_partition"]
