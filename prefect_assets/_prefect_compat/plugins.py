"""Prefect's collections (``prefect-dask``, ``prefect-ray``, ...) loaded ahead, in the forkserver.

The run context a task receives holds a result-storage block; validating it looks its class up
by key, which imports every installed collection the first time
(``prefect.plugins.load_prefect_collections``). Done once in the forkserver, every worker
forked from it has them. Without :data:`AVAILABLE` nothing is loaded ahead: each worker loads
them in its first task, as a spawned worker does.
"""

from __future__ import annotations

import prefect.plugins

from prefect_assets._prefect_compat import available


def probe() -> bool:
    return callable(getattr(prefect.plugins, "load_prefect_collections", None))


AVAILABLE = available(probe)


def load_collections() -> None:
    """Load Prefect's collections now, if :data:`AVAILABLE`."""
    if AVAILABLE:
        prefect.plugins.load_prefect_collections()
