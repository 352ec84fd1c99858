"""From a :class:`DeploymentSpec` to Prefect's schedules and ``RunnerDeployment``.

Every deployment runs the one module-level flow
:func:`prefect_assets.flows.entry.materialize_assets`, found by its module path, so a served
run, a worker's run and a run on another machine all import the same code. What differs
between deployments is only data: the parameters (project folder, selection, partition,
options), the schedules, and, for a work pool, the folder the worker changes into first.

On the server a deployment is ``materialize-<project>/<name>``: the flow is named after the
project, the same name in-process runs of ``prefect-assets materialize`` carry, so a
project's scheduled and manual runs sit together in the Prefect UI.
"""

from __future__ import annotations

from typing import Any

from prefect.deployments.runner import RunnerDeployment
from prefect.runner.storage import GitRepository, LocalStorage
from prefect.schedules import Cron, Interval, RRule, Schedule
from prefect.types.entrypoint import EntrypointType

from prefect_assets.config import Project
from prefect_assets.deployments.spec import DeploymentSpec, ScheduleSpec
from prefect_assets.flows.entry import materialize_assets


def flow_name(project: Project) -> str:
    """The Prefect flow name of a project's runs: ``materialize-<project name>``."""
    return f"materialize-{project.config.name}"


def full_name(project: Project, spec_or_name: DeploymentSpec | str) -> str:
    """``materialize-shop/nightly``: what Prefect's CLI and API call the deployment."""
    name = spec_or_name if isinstance(spec_or_name, str) else spec_or_name.name
    return f"{flow_name(project)}/{name}"


def prefect_schedule(schedule: ScheduleSpec) -> Schedule:
    """One spec schedule as Prefect's ``Cron``, ``Interval`` or ``RRule``."""
    if schedule.cron is not None:
        return Cron(schedule.cron, timezone=schedule.timezone, active=schedule.active)
    if schedule.rrule is not None:
        return RRule(schedule.rrule, timezone=schedule.timezone, active=schedule.active)
    assert schedule.interval is not None  # the spec guarantees exactly one kind
    return Interval(schedule.interval, timezone=schedule.timezone, active=schedule.active)


def run_parameters(spec: DeploymentSpec, project: Project) -> dict[str, Any]:
    """The flow parameters every run of ``spec`` gets; unset options are left out, so the
    project's config (for example its ``runner:``) applies when the run starts.

    ``project`` is this project's folder, or, with a git ``source:``, the project's folder
    inside the clone, relative to the clone that the run starts in.
    """
    values: dict[str, Any] = {
        "project": spec.source.directory if spec.source else str(project.root),
        "select": spec.select,
        "partition": spec.partition,
        "timezone": spec.timezone,
        **spec.parameters.model_dump(),
    }
    return {k: v for k, v in values.items() if v is not None}


def runner_deployment(spec: DeploymentSpec, project: Project, work_pool: str | None = None) -> RunnerDeployment:
    """The Prefect deployment for ``spec``: served from this process, or for ``work_pool``.

    Args:
        spec: the validated deployment spec.
        project: the project it belongs to.
        work_pool: register for this work pool (``deploy``); ``None`` for ``serve``.

    The code location: with a git ``source:``, the repository, cloned before each run (by
    the worker, or by ``serve`` itself). Otherwise, for a work pool, this project's folder (a
    ``set_working_directory`` pull step): a worker on this machine changes into it before the
    run starts; ``serve`` runs from here and needs none.
    """
    deployment = RunnerDeployment.from_flow(
        materialize_assets.with_options(name=flow_name(project)),
        name=spec.name,
        schedules=[prefect_schedule(s) for s in spec.all_schedules],
        concurrency_limit=spec.concurrency,
        parameters=run_parameters(spec, project),
        description=spec.description or f"Materialize {spec.select} of project {project.config.name}",
        tags=spec.tags,
        work_pool_name=work_pool,
        # The flow lives in the installed package, not in the project: a module path imports
        # it wherever prefect-assets is installed, whatever the working directory.
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    if spec.source is not None:
        deployment.storage = GitRepository(url=spec.source.git, branch=spec.source.branch)
    elif work_pool is not None:
        deployment.storage = LocalStorage(str(project.root))
    return deployment


__all__ = ["flow_name", "full_name", "prefect_schedule", "run_parameters", "runner_deployment"]
