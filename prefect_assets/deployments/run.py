"""``run``: trigger one run of a registered deployment, and optionally follow it to the end.

The run is created on the server; whoever serves the deployment (``prefect-assets serve``
or a worker on its pool) picks it up. Parameters given here override the deployment's for
this run only, and go through the same checks as a spec's, so a typo is an error here, not a
failed run later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, TaskRun
from pydantic import ValidationError

from prefect_assets.config import Project
from prefect_assets.deployments.build import full_name
from prefect_assets.deployments.server import read_deployment
from prefect_assets.deployments.spec import load_deployments, pick
from prefect_assets.errors import AssetsError
from prefect_assets.flows.options import RunOptions, describe_errors


def deployment_full_name(project: Project | None, name: str) -> str:
    """``nightly`` → ``materialize-shop/nightly``; a full ``flow/deployment`` name is kept.

    Raises:
        AssetsError: ``name`` is no deployment of the project (with close matches).
    """
    if "/" in name:
        return name
    if project is None:
        raise AssetsError(f"deployment '{name}': run inside a project, pass --project DIR, or give flow/deployment")
    pick(load_deployments(project), [name], project.config.name)
    return full_name(project, name)


def check_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``--param`` values (the run options); return them with unset keys left out.

    Raises:
        AssetsError: an unknown key (with close matches) or a value of the wrong type.
    """
    try:
        overrides = RunOptions.model_validate(dict(params))
    except ValidationError as exc:
        raise AssetsError(describe_errors(exc, "--param", RunOptions.model_fields)) from None
    return overrides.model_dump(exclude_unset=True)


def trigger(client: SyncPrefectClient, name: str, params: Mapping[str, Any], hint: str) -> FlowRun:
    """Create a flow run of the deployment ``name`` (``flow/deployment``) with ``params``.

    Raises:
        AssetsError: the deployment is not registered (``hint`` says how to register it).
    """
    deployment = read_deployment(client, name, hint)
    return client.create_flow_run_from_deployment(deployment.id, parameters=dict(params))


def wait(
    client: SyncPrefectClient, flow_run_id: UUID, timeout: float | None = None, poll_seconds: float = 1.0
) -> FlowRun:
    """Poll the flow run until its state is final (Completed, Failed, Crashed, Cancelled).

    Returns the flow run as last read: still not final if ``timeout`` seconds passed first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        flow_run = client.read_flow_run(flow_run_id)
        if flow_run.state is not None and flow_run.state.is_final():
            return flow_run
        if deadline is not None and time.monotonic() >= deadline:
            return flow_run
        time.sleep(poll_seconds)


def task_runs(client: SyncPrefectClient, flow_run_id: UUID, settle_seconds: float = 10.0) -> list[TaskRun]:
    """The flow run's task runs, one per asset that ran, named by asset key.

    The server records task runs from events, a moment after they happen: right after a
    flow run ends, the last task runs may still be missing or show an earlier state. So
    this reads until two reads agree and every state is final, for at most ``settle_seconds``.
    """
    flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    deadline = time.monotonic() + settle_seconds
    previous: list[tuple[str, str | None]] | None = None
    while True:
        runs = client.read_task_runs(flow_run_filter=flow_run_filter)
        seen = sorted((r.name, r.state.type.value if r.state else None) for r in runs)
        settled = seen == previous and all(r.state is not None and r.state.is_final() for r in runs)
        if settled or time.monotonic() >= deadline:
            return sorted(runs, key=lambda r: (r.start_time is None, r.start_time or 0, r.name))
        previous = seen
        time.sleep(0.5)


__all__ = ["check_overrides", "deployment_full_name", "task_runs", "trigger", "wait"]
