"""The Prefect server the benchmarks run against: started like ``prefect-assets server start``.

Each benchmark gets its own ``prefect server start`` on 127.0.0.1 and a free port, in a temporary
PREFECT_HOME (a fresh database), analytics and UI off, started and stopped through
:mod:`prefect_assets.deployments.local_server`. Between timed runs a benchmark waits until the
server has recorded every task run so far and gone quiet, so no run pays for another's backlog.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect_assets.deployments import local_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_prefect_server(prefix: str) -> Iterator[tuple[str, int]]:
    """Yield ``(api_url, pid)`` of a server started for the block; stopped and its home removed after."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_UI_ENABLED"] = "false"
    try:
        server, _ = local_server.start(free_port(), home=home)
        yield server.api_url, server.pid
    finally:
        local_server.stop(home)
        shutil.rmtree(home, ignore_errors=True)


def count_task_runs(api_url: str) -> int:
    request = urllib.request.Request(f"{api_url}/task_runs/count", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.load(response))


def wait_until_idle(api_url: str, server_pid: int | None, expected_task_runs: int, timeout: float = 600) -> None:
    """Block until the server has recorded ``expected_task_runs`` task runs and its processes
    have gone quiet (under 5% CPU for 1.5 s)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and count_task_runs(api_url) < expected_task_runs:
        time.sleep(0.5)
    if server_pid is None:
        return
    root = psutil.Process(server_pid)
    processes = [root, *root.children(recursive=True)]
    for process in processes:
        process.cpu_percent(interval=None)  # the first call only starts psutil's measurement
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        busy = sum(p.cpu_percent(interval=None) for p in processes if p.is_running())
        quiet = quiet + 1 if busy < 5 else 0
