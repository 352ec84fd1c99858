"""Deployment commands: ``deploy``, ``serve``, ``run``.

All three need a running Prefect server: ``PREFECT_API_URL``, or else the local server of
``prefect-assets server start``. Prefect is imported inside each command, after
:func:`prepare_prefect_environment`, so the other commands stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from prefect_assets.cli.common import (
    ProjectOption,
    app,
    err,
    out,
    prefect_server,
    prepare_prefect_environment,
    user_errors,
)
from prefect_assets.errors import AssetsError

NamesArgument = typer.Argument(None, help="Deployment names (default: all of the project's deployments).")


@app.command()
@user_errors
def deploy(
    names: Optional[list[str]] = NamesArgument,
    project: Optional[Path] = ProjectOption,
    pool: Optional[str] = typer.Option(None, "--pool", help="Work pool for all of them (default: each one's work_pool:)."),
    create_pool: bool = typer.Option(False, "--create-pool", help="Create a missing pool (type process)."),
) -> None:
    """Register deployments on the Prefect server for a work pool; a worker runs them."""
    prepare_prefect_environment()
    from prefect_assets.deployments import serve as deployments

    loaded, specs = deployments.load(project, names or [])
    with prefect_server(loaded.config.local_server) as server:
        registered = deployments.deploy(loaded, specs, pool=pool, create_pool=create_pool)
    table = Table("deployment", "on the server", "work pool", "schedules", box=None)
    for item in registered:
        schedules = ", ".join(s.describe() for s in item.spec.all_schedules) or "-"
        table.add_row(item.spec.name, item.full_name, item.work_pool or "-", schedules)
    out.print(table)
    # A worker is a plain Prefect process: it finds the local server only through PREFECT_API_URL.
    address = f"PREFECT_API_URL={server.api_url} " if server is not None else ""
    for pool_name in sorted({item.work_pool for item in registered if item.work_pool}):
        out.print(f"run them with a worker:  {address}prefect worker start --pool {pool_name}", highlight=False)
    out.print(f"trigger a run now:       prefect-assets run {registered[0].spec.name} --wait", highlight=False)


@app.command()
@user_errors
def serve(
    names: Optional[list[str]] = NamesArgument,
    project: Optional[Path] = ProjectOption,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many runs at once."),
) -> None:
    """Serve deployments from this process: run their schedules until Ctrl-C (no work pool)."""
    # Prefect's INFO logs stay on: this is a long-running service whose runs' logs matter.
    prepare_prefect_environment(verbose=True)
    from prefect_assets.deployments import serve as deployments

    loaded, specs = deployments.load(project, names or [])
    out.print(f"serving {len(specs)} deployment(s) of project '{loaded.config.name}' from this process; Ctrl-C stops:")
    for spec in specs:
        schedules = ", ".join(s.describe() for s in spec.all_schedules) or "no schedule (trigger with run)"
        out.print(f"  {spec.name}: {spec.select} — {schedules}", highlight=False)
    out.print(f"trigger a run now: prefect-assets run {specs[0].name} --wait", highlight=False)
    with prefect_server(loaded.config.local_server):
        deployments.serve(loaded, specs, limit=limit)


@app.command()
@user_errors
def run(
    name: str = typer.Argument(..., help="Deployment name (or flow/deployment as Prefect shows it)."),
    project: Optional[Path] = ProjectOption,
    param: Optional[list[str]] = typer.Option(None, "--param", help="Override a parameter: k=v (v as JSON or text)."),
    wait_: bool = typer.Option(False, "--wait", help="Follow the run to the end; exit 0 Completed, 1 otherwise."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0, help="With --wait: give up after this many seconds."),
) -> None:
    """Trigger a run of a deployment on the server and print its id and URL."""
    prepare_prefect_environment()
    from prefect_assets.config import load_project
    from prefect_assets.deployments import run as runs
    from prefect_assets.deployments.server import connect, flow_run_url

    loaded = None if "/" in name else load_project(project)
    full = runs.deployment_full_name(loaded, name)
    overrides = runs.check_overrides(_parse_params(param or []))
    hint = f"register it with: prefect-assets deploy {name} (or serve it: prefect-assets serve {name})"
    with prefect_server(loaded.config.local_server if loaded else None), connect() as client:
        flow_run = runs.trigger(client, full, overrides, hint)
        out.print(f"flow run {flow_run.name} ({flow_run.id}) of {full}", highlight=False)
        out.print(flow_run_url(flow_run.id), highlight=False)
        if not wait_:
            return
        pool = getattr(flow_run, "work_pool_name", None)
        runner = f"a worker on pool '{pool}'" if pool else f"prefect-assets serve {name}"
        out.print(f"waiting for it to finish (it starts once {runner} picks it up)...", highlight=False)
        final = runs.wait(client, flow_run.id, timeout)
        tasks = runs.task_runs(client, flow_run.id)
    state = final.state
    if tasks:
        table = Table("asset", "state", box=None)
        for task in tasks:
            table.add_row(task.name, task.state.name if task.state else "-")
        out.print(table)
    if state is None or not state.is_final():
        err.print(f"flow run {final.name} is still {state.name if state else 'pending'} after {timeout:g} s; "
                  f"follow it at {flow_run_url(final.id)}", highlight=False)
        raise typer.Exit(1)
    message = f": {state.message}" if state.message and not state.is_completed() else ""
    (out if state.is_completed() else err).print(f"flow run {final.name}: {state.name}{message}", highlight=False)
    if not state.is_completed():
        raise typer.Exit(1)


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise AssetsError(f"--param {item!r}: write key=value, e.g. --param stale_only=true")
        try:
            params[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            params[key.strip()] = text  # plain text: a selection, a partition key, a zone
    return params
