"""Prefect's embedded server, started so that it dies with the process that started it.

Without ``PREFECT_API_URL``, Prefect starts an ephemeral API server for the process, Prefect's
``SubprocessASGIServer``: a ``python -m uvicorn`` child process, stopped by an ``atexit``
handler. A process killed by SIGKILL (or by a SIGTERM nothing handles, or the kernel's
out-of-memory killer) runs no exit handlers, and nothing else ties the child to it: the server
is re-parented and serves on its port, holding its database, for ever.

:func:`start_embedded_server` starts that same server (Prefect's singleton, the one
``get_client()`` would start) before the run needs it, together with a small watchdog process
(:mod:`prefect_assets.flows.server_watchdog`) that holds the read end of a pipe whose only
write end is in this process. The kernel closes it when this process dies, however it dies;
the watchdog then stops the server as Prefect's ``stop()`` would. At a normal exit Prefect
stops the server itself and the watchdog is told to leave it alone. Why a separate watchdog:
``PR_SET_PDEATHSIG`` needs code in the server's child before ``exec``, which Prefect's spawn
offers no hook for, is Linux-only, and fires when the *thread* that started the child ends.

**Prefect internals, fenced.** The server process is caught the moment Prefect creates it
(a process killed while the server starts is covered too, and a restart on another port is
guarded as well), through :mod:`prefect_assets._prefect_compat.ephemeral_server`. Where that is
not available (or ``PREFECT_ASSETS_STOCK_PREFECT`` is set), or on a platform without
``pass_fds`` (Windows), the run keeps Prefect's default: the server started on first use,
unguarded, never an error.

A child *forked* from this process (not spawned) inherits the pipe's write end, so the
watchdog also waits for it: the server outlives the parent only as long as such a child,
which may still be using it.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

_WATCHDOG_SCRIPT = Path(__file__).with_name("server_watchdog.py")


def start_embedded_server() -> None:
    """Start Prefect's embedded server now, guarded by the watchdog, if this run will use it.

    Does nothing when ``PREFECT_API_URL`` is set or the ephemeral server is disabled. Safe to
    call more than once: Prefect starts its server once per process, and each server process is
    guarded once.

    Raises:
        RuntimeError: Prefect's own error when the server does not start in time.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    server = _prefect_embedded_server()
    if server is None:
        return
    from prefect_assets._prefect_compat import ephemeral_server

    if _guarding_supported():
        _watchdog()  # started beside the server; its exit handler runs after Prefect's stop()
        ephemeral_server.start(server, on_process=_guard)  # a repeated pid is a no-op
    else:
        ephemeral_server.start(server)


def embedded_server_in_use() -> bool:
    """Whether this process's Prefect API is the embedded server (no ``PREFECT_API_URL``)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


#: Give up waiting when the server has recorded no further task run for this long.
RECORDING_PATIENCE_SECONDS = 30.0
_FINAL_STATE_TYPES = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]


def wait_until_recorded(
    flow_run_id: str,
    expected: int,
    on_progress: Callable[[int, int], None] | None = None,
    patience: float = RECORDING_PATIENCE_SECONDS,
) -> int:
    """Wait until the server holds ``expected`` finished task runs of ``flow_run_id``.

    Prefect's server records a task run from the events the run sends it, and it takes them
    in well behind a busy run; the embedded server stops with this process, and whatever it
    has not recorded by then is lost from the history. Before the process may end, this waits
    while the count keeps growing, reporting each new count to ``on_progress``, and gives up
    after ``patience`` seconds without progress, with a warning that says how many are missing.

    Returns:
        How many of the ``expected`` task runs the server had not recorded when the wait
        ended (0 when all are there).
    """
    from prefect import get_client

    body = {
        "flow_runs": {"id": {"any_": [str(flow_run_id)]}},
        "task_runs": {"state": {"type": {"any_": _FINAL_STATE_TYPES}}},
    }
    recorded, last_change = -1, time.monotonic()
    with get_client(sync_client=True) as client:
        while True:
            response = client.request("POST", "/task_runs/count", json=body)
            response.raise_for_status()
            count = int(response.json())
            if count != recorded:
                recorded, last_change = count, time.monotonic()
                if on_progress is not None:
                    on_progress(recorded, expected)
            if recorded >= expected:
                return 0
            if time.monotonic() - last_change > patience:
                _log.warning(
                    "Prefect's embedded server had recorded %d of the %d task runs of flow run %s when it "
                    "stopped taking them in; the others are missing from its history. A running server keeps "
                    "taking them in after the command ends: prefect-assets server start",
                    recorded, expected, flow_run_id,
                )
                return expected - recorded
            time.sleep(0.25)


def _prefect_embedded_server() -> Any | None:
    """Prefect's ``SubprocessASGIServer()`` singleton, or None (fenced: see the module docstring)."""
    try:
        from prefect_assets._prefect_compat.ephemeral_server import embedded_server
    except ImportError:  # Prefect's server package cannot be imported here
        return None
    return embedded_server()


def _guarding_supported() -> bool:
    return os.name == "posix"


class _Watchdog:
    """This process's end of the watchdog: one per process, started on first use.

    Raises:
        OSError: the watchdog process could not be started.
    """

    def __init__(self) -> None:
        read_end, write_end = os.pipe()  # not inherited by later children (PEP 446)
        try:
            # Its own copy of the read end only; no Prefect, no site-packages, no project.
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_WATCHDOG_SCRIPT), str(read_end)],
                pass_fds=(read_end,), stdin=subprocess.DEVNULL,
            )
        except OSError:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._write_end: int | None = write_end
        self.owner = os.getpid()
        self._guarded: set[int] = set()
        self._lock = threading.Lock()
        # Registered before Prefect registers its server's stop(), so it runs after it (exit
        # handlers run last-registered first): Prefect stops the server, then the watchdog
        # is released.
        atexit.register(self.release)

    def guard(self, pid: int) -> None:
        with self._lock:
            if pid not in self._guarded:
                self._send(f"guard {pid}")
                self._guarded.add(pid)

    def release(self) -> None:
        # A forked child runs its parent's exit handlers too; only the owner may release.
        if os.getpid() != self.owner:
            return
        with self._lock:
            self._send("release")
            if self._write_end is not None:
                os.close(self._write_end)
                self._write_end = None  # the number may name another file from now on

    def _send(self, line: str) -> None:
        if self._write_end is None:
            return
        try:
            os.write(self._write_end, line.encode("ascii") + b"\n")  # one short write: atomic
        except OSError:  # the watchdog is gone: the server is Prefect's alone, as by default
            _log.debug("the embedded server's watchdog is not listening", exc_info=True)


_the_watchdog: _Watchdog | None = None
_the_watchdog_lock = threading.Lock()


def _watchdog() -> _Watchdog | None:
    """This process's watchdog, started on first use; None if it cannot start (then the
    server is left as Prefect starts it)."""
    global _the_watchdog
    with _the_watchdog_lock:
        if _the_watchdog is None or _the_watchdog.owner != os.getpid():
            try:
                _the_watchdog = _Watchdog()
            except OSError:
                _log.debug("could not start the embedded server's watchdog", exc_info=True)
                return None
        return _the_watchdog


def _guard(pid: int) -> None:
    watchdog = _watchdog()
    if watchdog is not None:
        watchdog.guard(pid)
