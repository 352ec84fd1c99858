"""Is the configured Prefect server there? Asked once before a run, so a wrong
``PREFECT_API_URL`` is one line instead of a flow run that dies with a long traceback.
"""

from __future__ import annotations

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.settings import PREFECT_API_URL

from prefect_assets.errors import AssetsError


def require_reachable_api() -> None:
    """Raise :class:`AssetsError` if ``PREFECT_API_URL`` is set and its server does not answer.

    Without ``PREFECT_API_URL`` Prefect starts its embedded (ephemeral) server for the run, so
    there is nothing to check.

    Raises:
        AssetsError: the server at ``PREFECT_API_URL`` failed its health check (refused,
            timed out, not a Prefect API); the message names the URL and both ways out.
    """
    if not PREFECT_API_URL.value():
        return
    with get_client(sync_client=True) as client:
        check_health(client, "start one with: prefect server start, or unset PREFECT_API_URL to use the embedded server")


def check_health(client: SyncPrefectClient, fix: str) -> None:
    """Raise :class:`AssetsError` naming the server's URL, what went wrong and ``fix`` if the
    server behind ``client`` fails its health check."""
    problem = client.api_healthcheck()
    if problem is not None:
        reason = " ".join(str(problem).split()) or type(problem).__name__
        raise AssetsError(f"cannot reach the Prefect server at {PREFECT_API_URL.value()} (PREFECT_API_URL): {reason}; {fix}")
