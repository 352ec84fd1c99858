"""A Prefect server on this machine that outlives the command: start it, find it, stop it.

Without ``PREFECT_API_URL`` every Prefect process starts a throwaway server of its own (the
"embedded" or ephemeral server): a ``materialize`` waits for it to start, and it stops with the
command while it is still recording the run's task runs. ``dagster dev`` answers the same
problem with one local instance for all runs; Prefect has ``prefect server start``. This module
runs exactly that command, detached, so the commands that talk to Prefect can use it:

- **Where**: 127.0.0.1, port :data:`DEFAULT_PORT` unless told otherwise, and Prefect's own
  home (``PREFECT_HOME``, ``~/.prefect`` by default). Its database is the one the embedded
  server uses, so the runs of both end up in one history and one UI.
- **State**: ``<PREFECT_HOME>/prefect-assets-server.json`` holds the server's process id and
  address; its output goes to ``<PREFECT_HOME>/prefect-assets-server.log``. A server started
  with Prefect's own ``prefect server start --background`` (its ``server.pid`` file) is found
  too, at the host and port of Prefect's settings.
- **Found** only when its process is alive *and* it answers ``/api/health``: a state file left
  by a server that died is never trusted.

Nothing here imports Prefect: the state file, a process-id check and one HTTP request on the
loopback decide whether a server is running, in a millisecond or two.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prefect_assets.errors import AssetsError

DEFAULT_PORT = 4200
HOST = "127.0.0.1"
STATE_FILE = "prefect-assets-server.json"
LOG_FILE = "prefect-assets-server.log"
#: Prefect's ``prefect server start --background`` writes its process id here.
PREFECT_PID_FILE = "server.pid"
#: A cold start on a small machine migrates a new database first: give it time.
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class LocalServer:
    """A running local Prefect server: its process and its API address."""

    pid: int
    api_url: str
    home: Path

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def prefect_home() -> Path:
    """Prefect's home folder, as Prefect resolves it when no profile overrides it."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def find_running(home: Path | None = None) -> LocalServer | None:
    """The local server of ``home`` (default :func:`prefect_home`) if one is running and healthy."""
    home = home or prefect_home()
    for server in (_ours(home), _prefects_own(home)):
        if server is not None and _alive(server.pid) and healthy(server.api_url):
            return server
    return None


def start(port: int = DEFAULT_PORT, home: Path | None = None, timeout: float = START_TIMEOUT_SECONDS) -> tuple[LocalServer, bool]:
    """Start ``prefect server start`` detached on 127.0.0.1:``port``, or find the one running.

    Returns:
        The server and whether this call started it (False: it was already running).

    Raises:
        AssetsError: the port is taken by something else, or the server did not answer its
            health check within ``timeout`` seconds (the message points at its log).
    """
    home = home or prefect_home()
    running = find_running(home)
    if running is not None:
        return running, False
    if not _port_free(port):
        raise AssetsError(
            f"port {port} on {HOST} is already in use by another program; "
            f"choose another with: prefect-assets server start --port {port + 1}"
        )
    home.mkdir(parents=True, exist_ok=True)
    log = home / LOG_FILE
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)  # the server is the API; it must not look for another
    with open(log, "ab") as output:
        # Its own session: a Ctrl-C or a closed terminal in the shell that started it does not
        # reach it; it runs until `prefect-assets server stop`.
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = LocalServer(pid=process.pid, api_url=f"http://{HOST}:{port}/api", home=home)
    _write_state(server)
    deadline = time.monotonic() + timeout
    while not healthy(server.api_url):
        if process.poll() is not None or time.monotonic() > deadline:
            _terminate(process.pid)
            (home / STATE_FILE).unlink(missing_ok=True)
            raise AssetsError(f"the Prefect server did not start on {HOST}:{port}; see its log: {log}")
        time.sleep(0.2)
    return server, True


def stop(home: Path | None = None) -> LocalServer | None:
    """Stop the local server of ``home`` and wait for it to exit; None if none was running.

    A server that ignores SIGTERM for :data:`STOP_TIMEOUT_SECONDS` is killed.
    """
    home = home or prefect_home()
    stopped = None
    for server, state_file in ((_ours(home), STATE_FILE), (_prefects_own(home), PREFECT_PID_FILE)):
        if server is not None and _alive(server.pid) and _runs_prefect(server.pid):
            _terminate(server.pid)
            stopped = stopped or server
        if server is not None:
            (home / state_file).unlink(missing_ok=True)
    return stopped


@contextmanager
def use_local_server(start_on_demand: bool = False, port: int = DEFAULT_PORT) -> Iterator[LocalServer | None]:
    """Point Prefect at the running local server for the block, if ``PREFECT_API_URL`` is unset.

    A ``PREFECT_API_URL`` from the environment or the Prefect profile always wins (yields
    None). Otherwise the running local server is used, started first with
    ``start_on_demand``; with none, Prefect keeps its embedded server (yields None). The address
    goes into this process's Prefect settings and its environment, so processes it starts
    (process-pool workers, a local Dask cluster) use the same server.

    Raises:
        AssetsError: ``start_on_demand`` and the server does not start.
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url:
        yield None
        return
    server = find_running()
    if server is None and start_on_demand:
        server, _ = start(port)
    if server is None:
        yield None
        return
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether a Prefect API answers its health check at ``api_url`` now."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _ours(home: Path) -> LocalServer | None:
    try:
        state = json.loads((home / STATE_FILE).read_text())
        return LocalServer(pid=int(state["pid"]), api_url=str(state["api_url"]), home=home)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prefects_own(home: Path) -> LocalServer | None:
    """The server ``prefect server start --background`` left a process id for, at the address
    Prefect's settings give it (environment variables; Prefect's defaults otherwise)."""
    try:
        pid = int((home / PREFECT_PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    host = os.environ.get("PREFECT_SERVER_API_HOST", HOST)
    port = os.environ.get("PREFECT_SERVER_API_PORT", str(DEFAULT_PORT))
    return LocalServer(pid=pid, api_url=f"http://{host}:{port}/api", home=home)


def _write_state(server: LocalServer) -> None:
    path = server.home / STATE_FILE
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"pid": server.pid, "api_url": server.api_url}))
    os.replace(temporary, path)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie waiting for its parent has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc here: existing is all we can tell
        return True
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


def _runs_prefect(pid: int) -> bool:
    """Whether process ``pid`` runs Prefect: a state file can outlive its server, and the
    process id be given to another program since. Trusted where ``/proc`` cannot tell."""
    try:
        return b"prefect" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc/self").exists()


def _terminate(pid: int) -> None:
    """SIGTERM ``pid`` (Prefect's server shuts down gracefully on it), SIGKILL after the timeout."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.1)


def _port_free(port: int) -> bool:
    """Whether nothing listens on ``port``. SO_REUSEADDR, as the server itself (uvicorn) binds:
    the closed connections of a server just stopped (TIME_WAIT, a minute) do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


__all__ = ["DEFAULT_PORT", "LocalServer", "find_running", "healthy", "prefect_home", "start", "stop", "use_local_server"]
