"""A killed ``materialize`` leaves no embedded server behind, and its flow run ends Crashed.

Real components only: the CLI in a subprocess, killed with SIGKILL while an asset runs (the
asset says so by writing its flow run id to a file, then waits for a release file); Prefect's
embedded server as the CLI starts it; a real ``prefect server start`` on 127.0.0.1 (the
session's ``prefect_server_url``). Every wait polls a condition against a deadline.

Linux only: the flow-run check reads ``/proc`` (see ``prefect_assets/flows/killed_runs.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc: Linux only")

#: Generous for a cold, busy 2-core machine; met in seconds otherwise.
DEADLINE = 120

SLEEPY_ASSETS = '''
import os
import time
from pathlib import Path

from prefect_assets import AssetContext, asset


@asset
def slow(context: AssetContext) -> dict:
    """Says it runs (its flow run id in $SLEEPY_MARKER), then waits for $SLEEPY_MARKER.release."""
    marker = Path(os.environ["SLEEPY_MARKER"])
    marker.write_text(context.run_id or "")
    deadline = time.monotonic() + 300
    while not marker.with_suffix(".release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"slow": True}


@asset
def quick() -> dict:
    return {"quick": True}
'''


@pytest.fixture
def sleepy(tmp_path: Path) -> Path:
    """A project with an asset that runs until released, and a quick one."""
    project = tmp_path / "sleepy"
    (project / "sleepy_assets").mkdir(parents=True)
    (project / "prefect_assets.yaml").write_text("name: sleepy\nmodules: [sleepy_assets]\n")
    (project / "sleepy_assets" / "__init__.py").write_text(textwrap.dedent(SLEEPY_ASSETS))
    return project


@pytest.fixture
def started() -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts ``prefect-assets ARGS`` in the background, in its own process group; at the end
    kills what is left of each group (the CLI, its watchdog and server)."""
    processes: list[subprocess.Popen] = []

    def start(*args: str, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "prefect_assets.cli", *args], cwd=cwd, env={**os.environ, **env},
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)


def wait_for(condition: Callable[[], object], what: str, timeout: float = DEADLINE, log: Path | None = None) -> object:
    """Poll ``condition`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            detail = f"\n{log.read_text(errors='replace')[-3000:]}" if log and log.exists() else ""
            pytest.fail(f"timed out waiting for {what}{detail}")
        time.sleep(0.1)
    return value


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> dict[int, str]:
    """``{pid: command line}`` of the processes whose parent is ``pid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = command
    return found


def embedded_server_of(pid: int) -> tuple[int, str] | None:
    """The pid and API URL of the embedded server ``pid`` started, once its process exists."""
    for child, command in children(pid).items():
        if " uvicorn " in command and " --port " in command:
            return child, f"http://127.0.0.1:{command.split(' --port ')[1].split()[0]}/api"
    return None


def task_run_states(api_url: str, flow_run_id: str) -> list[str]:
    """The states of a flow run's task runs as the server has recorded them (it records them from
    events, which arrive after the asset has started)."""
    runs = api(api_url, "POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    return [run["state_type"] for run in runs]


def api(api_url: str, method: str, path: str, body: dict | None = None) -> dict | list:
    """One call to the Prefect REST API."""
    request = urllib.request.Request(
        f"{api_url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def marker_env(tmp_path: Path, name: str) -> tuple[Path, dict[str, str]]:
    marker = tmp_path / f"{name}.marker"
    return marker, {"SLEEPY_MARKER": str(marker)}


def test_killed_cli_leaves_no_embedded_server_and_the_next_run_crashes_its_flow_run(sleepy, tmp_path, started):
    # Both runs use the session's PREFECT_HOME, so the embedded servers they start share a database.
    marker, env = marker_env(tmp_path, "killed")
    log = tmp_path / "killed.log"
    cli = started("materialize", "-s", "slow", cwd=sleepy, env=env, log=log)
    wait_for(marker.exists, "the asset to start", log=log)
    flow_run_id = marker.read_text()
    found = embedded_server_of(cli.pid)
    assert found is not None and running(found[0]), children(cli.pid)
    server, server_url = found
    wait_for(lambda: task_run_states(server_url, flow_run_id) == ["RUNNING"], "the server to record the running task")

    os.kill(cli.pid, signal.SIGKILL)  # the CLI only: its exit handlers never run
    cli.wait(timeout=30)
    wait_for(lambda: not running(server), "the orphaned embedded server to stop", timeout=60)

    # The note is printed only for a Crashed state the server accepted; the states themselves
    # are read back in the real-server test below.
    result = run_cli("materialize", "-s", "quick", cwd=sleepy, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"({flow_run_id}) was left Running by a process that is gone (pid {cli.pid}" in result.stdout, result.stdout
    assert "marked Crashed" in result.stdout


def test_cli_killed_while_the_embedded_server_starts_leaves_no_server(sleepy, tmp_path, started):
    marker, env = marker_env(tmp_path, "early")
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    log = tmp_path / "early.log"
    cli = started("materialize", "-s", "quick", cwd=sleepy, env=env, log=log)
    server, _ = wait_for(lambda: embedded_server_of(cli.pid), "the embedded server process to appear", log=log)
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait(timeout=30)
    wait_for(lambda: not running(server), "the orphaned embedded server to stop", timeout=60)


def test_on_a_real_server_only_runs_of_ended_processes_are_crashed(sleepy, tmp_path, started, prefect_server_url):
    url = prefect_server_url
    killed_marker, killed_env = marker_env(tmp_path, "killed")
    alive_marker, alive_env = marker_env(tmp_path, "alive")
    killed = started("materialize", "-s", "slow", cwd=sleepy, env={**killed_env, "PREFECT_API_URL": url},
                     log=tmp_path / "killed.log")
    alive = started("materialize", "-s", "slow", cwd=sleepy, env={**alive_env, "PREFECT_API_URL": url},
                    log=tmp_path / "alive.log")
    wait_for(killed_marker.exists, "the killed run's asset to start", log=tmp_path / "killed.log")
    wait_for(alive_marker.exists, "the live run's asset to start", log=tmp_path / "alive.log")
    killed_run, alive_run = killed_marker.read_text(), alive_marker.read_text()
    wait_for(lambda: task_run_states(url, killed_run) == ["RUNNING"], "the server to record the running task")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert api(url, "GET", f"/flow_runs/{killed_run}")["state_type"] == "RUNNING"  # what Prefect alone leaves

    tags = api(url, "GET", f"/flow_runs/{killed_run}")["tags"]
    scope = next(t for t in tags if t.startswith("prefect-assets.scope="))
    flow_id = api(url, "POST", "/flows/", {"name": f"decoys-{uuid.uuid4().hex[:8]}"})["id"]

    def decoy(*tags: str) -> str:
        run = api(url, "POST", "/flow_runs/", {"flow_id": flow_id, "tags": list(tags), "state": {"type": "RUNNING"}})
        return run["id"]

    gone_pid = killed.pid  # reaped above: no process has it now, barring reuse within the test
    elsewhere = decoy("prefect-assets.scope=0123456789ab", f"prefect-assets.process=other-host:{gone_pid}:1")
    reused_pid = decoy(scope, f"prefect-assets.process=this-host:{os.getpid()}:1")  # live pid, other start time

    result = run_cli("materialize", "-s", "quick", cwd=sleepy, api_url=url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"({killed_run}) was left Running" in result.stdout, result.stdout

    killed_state = api(url, "GET", f"/flow_runs/{killed_run}")["state"]
    assert killed_state["type"] == "CRASHED" and f"pid {killed.pid}" in killed_state["message"]
    assert task_run_states(url, killed_run) == ["CRASHED"]
    task_runs = api(url, "POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": [killed_run]}}})
    assert not [tag for run in task_runs for tag in run["tags"] if tag.startswith("prefect-assets.")]  # flow run's only
    assert api(url, "GET", f"/flow_runs/{reused_pid}")["state_type"] == "CRASHED"
    assert api(url, "GET", f"/flow_runs/{elsewhere}")["state_type"] == "RUNNING"  # another machine: not ours to judge
    assert api(url, "GET", f"/flow_runs/{alive_run}")["state_type"] == "RUNNING"  # its process lives

    alive_marker.with_suffix(".release").write_text("")
    assert alive.wait(timeout=DEADLINE) == 0, (tmp_path / "alive.log").read_text()
    assert api(url, "GET", f"/flow_runs/{alive_run}")["state_type"] == "COMPLETED"


def test_without_prefects_server_class_the_run_keeps_prefects_default(monkeypatch):
    """The probe: if ``SubprocessASGIServer`` moves, nothing is started or guarded, and nothing fails."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    from prefect_assets.flows import embedded_server

    probed = []
    probe = embedded_server._prefect_embedded_server
    monkeypatch.setattr(embedded_server, "_prefect_embedded_server", lambda: probed.append(probe()) or probed[-1])
    monkeypatch.setitem(sys.modules, "prefect.server.api.server", None)  # importing it raises ImportError
    monkeypatch.setattr(embedded_server, "_watchdog", lambda: pytest.fail("no watchdog without a server"))
    # Embedded, even while the session's test server is up.
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_ENABLED: True}, restore_defaults={PREFECT_API_URL}):
        embedded_server.start_embedded_server()
    assert probed == [None]
