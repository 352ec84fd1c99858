"""One Prefect API client per process-pool worker, shared by all the assets it runs.

Prefect runs each task it sends to another process inside a fresh context, and no client
context is open there, so every task builds its own API clients: one while it rebuilds the
run's context, one more for the task engine, which then asks the server for its API version.
Each client builds an SSL context, which parses the whole certifi CA bundle (20-25 ms of CPU),
even for an ``http://`` server. Per asset that is 50-60 ms of CPU and a round trip, on the
cores the assets need, and it sits between one asset's end and the next one's start. (In the
flow process, Prefect shares one client between the tasks on threads.)

A process pool belongs to one flow run, and every task it runs gets the run's settings. So
each worker, when it is forked (:func:`start_pool_worker`), opens one ``SyncClientContext``
with those settings and keeps it open for its lifetime. Prefect's
``get_client(sync_client=True)`` returns the client of the open context, so every task in the
worker uses it: the version check runs once per worker, and the connection to the server is
kept between tasks.

Measured on two cores, eight one-second CPU-bound assets on two workers, together with the
process pool's start at its first submit (:class:`~prefect_assets.flows.runners.ForkserverProcessPoolTaskRunner`):
the time a worker spends between two assets fell from 70-90 ms to 15-20 ms (``docs/runners.md``).

Not shared: a worker whose settings name no API URL (it would start a server of its own), or
one whose client cannot be opened (the server is unreachable, or its version does not match):
its tasks then build their own clients and report what goes wrong, as Prefect's would. Dask and
Ray workers, which serve tasks from any number of runs, build clients per task as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect.context import SettingsContext, SyncClientContext
from prefect.settings import Settings

from prefect_assets.flows.warm_start import match_parent_environment


def start_pool_worker(
    environ: dict[str, str],
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    run_settings: Settings,
) -> None:
    """Process-pool worker initializer: the parent's environment, Prefect's initializer, one client.

    ``environ``, ``initializer`` and ``initargs`` go to :func:`match_parent_environment`
    (Prefect's initializer installs the forwarding of events and logs to the parent);
    ``run_settings`` are the settings of the run the pool belongs to, which its tasks run with.
    """
    match_parent_environment(environ, initializer, initargs)
    _share_one_client(run_settings)


def _share_one_client(run_settings: Settings) -> None:
    """Open one client context for the rest of the worker's life; the open context (a context
    variable of the worker's main thread, where every task runs) keeps it alive."""
    if not run_settings.api.url:
        return
    with SettingsContext(profile=SettingsContext.get().profile, settings=run_settings):
        client_context = SyncClientContext()
        try:
            client_context.__enter__()  # checks the server's API version, once for the worker
        except Exception:  # the tasks build their own clients and report the error themselves
            logging.getLogger(__name__).debug("no shared API client in this worker", exc_info=True)
