"""A real ``prefect server start`` for the tests, in its own process: what users run.

The in-process test harness (``prefect_test_harness``) has no scheduler a second process can
rely on and cannot be reached by a ``prefect worker`` or ``prefect-assets serve`` started as
subprocesses. This plugin starts the real server once per session on 127.0.0.1 and a free
port, with its own PREFECT_HOME (so its database is fresh and private) and analytics off (no
network here), waits for ``/api/health``, and stops it after the session.

Helpers start and stop further subprocesses (``serve``, workers) in their own process group,
so stopping one also stops the flow-run processes it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Generous for a cold 2-core machine.
STARTUP_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(api_url: str) -> bool:
    """Whether the server at ``api_url`` answers its health check now."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_process(args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``args`` in a new process group, output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def stop_process(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group, wait ``grace`` seconds, then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass


def tail(log: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log, for failure messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


#: The process id of the session's server, by its API URL (see :func:`prefect_server_pid`).
_SERVER_PIDS: dict[str, int] = {}


@pytest.fixture(scope="session")
def prefect_server_url() -> Iterator[str]:
    """Start ``prefect server start`` once per session; yield its API URL (``http://127.0.0.1:P/api``)."""
    home = Path(tempfile.mkdtemp(prefix="prefect-server-"))
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",  # nothing here looks at the dashboard; saves start-up work
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    server = start_process(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not healthy(api_url):
            if server.poll() is not None:
                pytest.fail(f"prefect server exited with {server.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {STARTUP_TIMEOUT} s:\n{tail(log)}")
            time.sleep(0.5)
        _SERVER_PIDS[api_url] = server.pid
        yield api_url
    finally:
        stop_process(server)


@pytest.fixture(scope="session")
def prefect_server_pid(prefect_server_url: str) -> int:
    """The process id of the session's ``prefect server start``."""
    return _SERVER_PIDS[prefect_server_url]
