"""One Prefect API for a run and all its worker processes (process pool, Dask, Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def api_shared_with_workers() -> Iterator[None]:
    """Inside the block, worker processes use the same Prefect API as this process.

    Without ``PREFECT_API_URL`` Prefect starts an ephemeral server in the first process that
    needs an API, and under the process pool, Dask or Ray that is *every* worker process:
    each would start its own server (each competing with the assets for CPU). Start
    the ephemeral server once, here, and put its URL in the settings Prefect hands to its
    workers. With ``PREFECT_API_URL`` set this does nothing. Threads need none of it: they
    share the flow process's API.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        temporary_settings,
    )

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield
        return
    from prefect_assets._prefect_compat.ephemeral_server import api_url

    with temporary_settings(updates={PREFECT_API_URL: api_url()}):  # the one get_client() would start
        yield
