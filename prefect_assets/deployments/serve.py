"""``serve`` and ``deploy``: two ways to put a project's deployments on a Prefect server.

- :func:`serve` registers the deployments and runs their scheduled (and triggered) runs from
  this process, with Prefect's runner: one command on one machine, no work pool, no worker.
  Each run still gets its own process, so a crashing asset cannot take the server down.
- :func:`deploy` only registers them, for a work pool; a ``prefect worker start --pool P``
  (on this machine: the project's folder is the recorded code location) runs them.

Both check everything first — the specs, their selections against the asset graph, the
server, the pools — so a mistake stops the command before anything is registered.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from prefect_assets.config import Project, load_project
from prefect_assets.definitions import Definitions
from prefect_assets.deployments.build import full_name, runner_deployment
from prefect_assets.deployments.server import connect, require_pool
from prefect_assets.deployments.spec import DeploymentSpec, check_selections, load_deployments, pick
from prefect_assets.errors import AssetsError


@dataclass(frozen=True)
class Registered:
    """A deployment now on the server."""

    spec: DeploymentSpec
    full_name: str
    id: UUID
    work_pool: str | None


def checked_specs(project: Project, names: Sequence[str] = ()) -> list[DeploymentSpec]:
    """The named deployments of ``project`` (all when none are named), selections checked.

    Raises:
        AssetsError: an unknown deployment name, an invalid spec, or a selection that names
            no asset of the project (this imports the project's modules).
    """
    specs = pick(load_deployments(project), list(names), project.config.name)
    check_selections(specs, Definitions.load(project).graph)
    return specs


def serve(project: Project, specs: Sequence[DeploymentSpec], *, limit: int | None = None) -> None:
    """Register ``specs`` and run their schedules from this process until interrupted.

    Args:
        project: the loaded project.
        specs: the deployments to serve (see :func:`checked_specs`).
        limit: at most this many flow runs at once across all of them (default: no limit
            beyond each deployment's own ``concurrency``).

    Blocks until Ctrl-C or SIGTERM; Prefect pauses the schedules on the way out, so runs stop
    being scheduled for a runner that is gone.

    Example:
        >>> project = load_project("examples/shop")                  # doctest: +SKIP
        >>> serve(project, checked_specs(project, ["nightly"]))      # doctest: +SKIP
    """
    # Imported here: ``prefect.serve`` pulls in the whole runner, which deploy and run do not need.
    from prefect import serve as prefect_serve

    # Prefect 3.8's runner leaves one coroutine un-awaited when it stops on SIGTERM; the
    # warning it prints on every clean shutdown says nothing a user can act on.
    warnings.filterwarnings("ignore", message="coroutine 'Runner.astop' was never awaited", category=RuntimeWarning)

    with connect():  # fail with one clear line now, rather than inside Prefect's runner
        pass
    deployments = []
    for spec in specs:
        deployment = runner_deployment(spec, project)
        # Assigning marks the fields as set, so re-registering a deployment that was once
        # deployed to a pool clears the pool: otherwise a worker would run it too.
        deployment.work_pool_name = None
        deployment.work_queue_name = None
        deployments.append(deployment)
    prefect_serve(*deployments, print_starting_message=False, limit=limit)


def deploy(
    project: Project,
    specs: Sequence[DeploymentSpec],
    *,
    pool: str | None = None,
    create_pool: bool = False,
) -> list[Registered]:
    """Register ``specs`` on the server for a work pool; a worker on that pool runs them.

    Args:
        project: the loaded project; its folder is recorded as the code location.
        specs: the deployments to register (see :func:`checked_specs`).
        pool: the work pool for all of them (default: each spec's ``work_pool:``).
        create_pool: create a missing pool (type ``process``) instead of failing.

    Returns:
        One :class:`Registered` per spec, in order.

    Raises:
        AssetsError: a spec has no pool and none was given, a pool does not exist (without
            ``create_pool``), or the server is unreachable. Nothing is registered then.
    """
    pools: dict[str, str] = {}
    for spec in specs:
        chosen = pool or spec.work_pool
        if not chosen:
            raise AssetsError(
                f"{spec.origin}: work_pool: deployment '{spec.name}' names no work pool; "
                "pass --pool POOL, or add work_pool: POOL to it (serve needs none)"
            )
        pools[spec.name] = chosen
    with connect() as client:
        for name in sorted(set(pools.values())):
            require_pool(client, name, create=create_pool)
    registered = []
    for spec in specs:
        deployment_id = runner_deployment(spec, project, work_pool=pools[spec.name]).apply()
        registered.append(Registered(spec, full_name(project, spec), deployment_id, pools[spec.name]))
    return registered


def load(project_dir: str | Path | None, names: Sequence[str] = ()) -> tuple[Project, list[DeploymentSpec]]:
    """Load the project at ``project_dir`` and its checked specs called ``names``."""
    project = load_project(project_dir)
    return project, checked_specs(project, names)


__all__ = ["Registered", "checked_specs", "deploy", "load", "serve"]
