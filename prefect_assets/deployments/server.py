"""Talking to the Prefect server: reachability, work pools, deployments, URLs.

Each failure a user can fix (no ``PREFECT_API_URL``, a server that does not answer, a
missing work pool, a deployment that was never registered) becomes one
:class:`AssetsError` line that names what to run next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import WorkPool
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

from prefect_assets.errors import AssetsError
from prefect_assets.flows.api import check_health

_START_A_SERVER = "start one with: prefect-assets server start (or point PREFECT_API_URL at yours)"


def api_url() -> str:
    """The configured ``PREFECT_API_URL`` (environment or Prefect profile).

    Raises:
        AssetsError: it is unset (and no local server is running: the CLI sets it to that
            one). Without it Prefect would start a throwaway in-process server, which
            forgets deployments and runs no schedules when the command exits.
    """
    url = PREFECT_API_URL.value()
    if not url:
        raise AssetsError(f"PREFECT_API_URL is not set: deployments need a running Prefect server; {_START_A_SERVER}")
    return url


@contextmanager
def connect() -> Iterator[SyncPrefectClient]:
    """A client for the configured server, once the server has answered its health check.

    Raises:
        AssetsError: ``PREFECT_API_URL`` is unset, or the server does not answer.
    """
    api_url()
    with get_client(sync_client=True) as client:
        check_health(client, "check the address, or start one with: prefect server start")
        yield client


def require_pool(client: SyncPrefectClient, name: str, create: bool = False) -> WorkPool:
    """The work pool ``name``; with ``create``, a new ``process`` pool if it does not exist.

    Raises:
        AssetsError: the pool does not exist and ``create`` is false.
    """
    try:
        return client.read_work_pool(name)
    except ObjectNotFound:
        if not create:
            raise AssetsError(
                f"work pool '{name}' does not exist on {api_url()}; pass --create-pool, "
                f"or create it with: prefect work-pool create {name} --type process"
            ) from None
    # Imported here: the worker module is only needed when a pool is created.
    from prefect.workers.process import ProcessWorker

    return client.create_work_pool(
        WorkPoolCreate(
            name=name,
            type="process",
            base_job_template=ProcessWorker.get_default_base_job_template(),
            description="Created by prefect-assets deploy --create-pool",
        )
    )


def read_deployment(client: SyncPrefectClient, full_name: str, hint: str) -> DeploymentResponse:
    """The deployment ``flow/deployment`` registered on the server.

    Raises:
        AssetsError: it is not registered; ``hint`` says how to register it.
    """
    try:
        return client.read_deployment_by_name(full_name)
    except ObjectNotFound:
        raise AssetsError(f"deployment '{full_name}' is not registered on {api_url()}; {hint}") from None


def flow_run_url(flow_run_id: UUID | str) -> str:
    """Where the Prefect UI shows a flow run."""
    ui = PREFECT_UI_URL.value() or api_url().removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}"


__all__ = ["api_url", "connect", "flow_run_url", "read_deployment", "require_pool"]
