"""Prefect's ephemeral API server: started early, its URL known, its process watched.

Without ``PREFECT_API_URL`` Prefect starts a server for the process the first time a client
needs one: ``prefect.server.api.server.SubprocessASGIServer()``, a per-process singleton, a
``python -m uvicorn`` child process made by its ``_run_uvicorn_command`` (again on another
port if the first one is taken) and kept in its ``server_process``. :func:`embedded_server`
hands out that singleton, so the caller can start it before the run needs it and learn its
process (:func:`start`) the moment it exists.

Import this module only when the server is used: it imports Prefect's server package (unless
the switch is on). Where that package cannot be imported, neither can this module, so an
importer finds out each time it tries, instead of once for the whole process.

Without :data:`AVAILABLE` :func:`embedded_server` is ``None``: Prefect starts the server itself
on first use, and no process is reported, so nothing stops it if this process is killed
outright. :func:`api_url` then asks the public ``get_client()``, which starts the same server.
"""

from __future__ import annotations

import inspect
import subprocess
from collections.abc import Callable
from typing import Any

from prefect_assets._prefect_compat import available, stock_prefect

if not stock_prefect():
    import prefect.server.api.server  # noqa: F401 - see the module docstring


def probe() -> bool:
    """``SubprocessASGIServer`` has ``start``, an ``api_url`` property and ``server_process``,
    and ``start`` makes its process with ``_run_uvicorn_command``."""
    from prefect.server.api.server import SubprocessASGIServer

    return (
        callable(getattr(SubprocessASGIServer, "start", None))
        and isinstance(inspect.getattr_static(SubprocessASGIServer, "api_url", None), property)
        and "server_process" in SubprocessASGIServer.__init__.__code__.co_names
        and callable(getattr(SubprocessASGIServer, "_run_uvicorn_command", None))
        and "_run_uvicorn_command" in SubprocessASGIServer.start.__code__.co_names
    )


AVAILABLE = available(probe)


def embedded_server() -> Any | None:
    """Prefect's ``SubprocessASGIServer()`` singleton (the one ``get_client()`` starts), or
    ``None``: not :data:`AVAILABLE`, or not importable now."""
    if not AVAILABLE:
        return None
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return None
    return SubprocessASGIServer()


def start(server: Any, on_process: Callable[[int], None] | None = None) -> None:
    """``server.start()`` (it starts once per process), with ``on_process(pid)`` called for each
    server process as soon as it is created, before ``start()`` waits for it to answer (a
    process killed while the server starts is covered too), and once more for the one it
    ended with. ``on_process`` must take a repeated pid quietly.

    Raises:
        RuntimeError: Prefect's own error when the server does not start in time.
    """
    if on_process is not None:
        _report_processes_as_they_start(server, on_process)
    server.start()
    process = getattr(server, "server_process", None)
    if on_process is not None and isinstance(process, subprocess.Popen):
        on_process(process.pid)


def api_url() -> str:
    """The URL of this process's ephemeral server, started now if it is not running."""
    server = embedded_server()
    if server is not None:
        server.start()
        return server.api_url
    from prefect import get_client

    with get_client(sync_client=True) as client:  # starts the same server, the public way
        return str(client.api_url).rstrip("/")


def _report_processes_as_they_start(server: Any, on_process: Callable[[int], None]) -> None:
    original = getattr(server, "_run_uvicorn_command", None)
    if not callable(original) or getattr(original, "_prefect_assets_reported", False):
        return

    def run_reported(*args: Any, **kwargs: Any) -> Any:
        process = original(*args, **kwargs)
        if isinstance(process, subprocess.Popen):
            on_process(process.pid)
        return process

    run_reported._prefect_assets_reported = True  # type: ignore[attr-defined]
    server._run_uvicorn_command = run_reported
