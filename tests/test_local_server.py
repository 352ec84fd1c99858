"""``prefect-assets server start|stop|status`` and the commands that use a running local server.

Everything here runs real processes: the CLI in subprocesses, each with a PREFECT_HOME of its
own (so the servers' databases are private to the test), analytics off, servers on 127.0.0.1
only. One local server is started for the module (``local_server``) and shared by the tests
that only need one to be running; the lifecycle test starts and stops its own, in a home and
on a port that the start-on-demand test reuses right after (a server started again on the
port of one just stopped).

What is checked on a server is read from it: its REST API (flow-run and task-run counts) or,
for the embedded server that stops with the command, its sqlite database.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, free_port

pytestmark = pytest.mark.timeout(600)

STATE_FILE = "prefect-assets-server.json"
FLOW_RUN = re.compile(r"flow run ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}): (\w+)")
FINAL_STATES = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]
EMBEDDED_NOTE = "note: Prefect's embedded server started with this command"
#: The generated project: how many assets, in how many layers and modules.
ASSETS, LAYERS, MODULES = 200, 10, 4
GENERATED_NAMES = [f"a{layer:02d}_{i:03d}" for layer in range(LAYERS) for i in range(ASSETS // LAYERS)]
SHOP_KEYS = [
    "customers", "orders", "prices", "paid_orders", "orders_by_customer", "reports/daily_revenue",
    "reports/kpis", "reports/revenue_by_country", "reports/top_customers",
]


# ---------------------------------------------------------------------------------------------
# Helpers: the CLI in a given PREFECT_HOME, the server's REST API, processes


def cli(*args: str, home: Path, cwd: Path | None = None, api_url: str | None = None,
        timeout: float = 400) -> subprocess.CompletedProcess:
    """``python -m prefect_assets.cli ARGS`` with PREFECT_HOME=``home``; PREFECT_API_URL only if given."""
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    env.pop("SHOP_DATA", None)  # the example's data goes to ./data of its copy
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    return subprocess.run(
        [sys.executable, "-m", "prefect_assets.cli", *args], check=False, cwd=cwd, env=env, capture_output=True,
        text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def output(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def api(api_url: str, path: str, body: dict | None = None) -> object:
    """GET (no body) or POST ``body`` to the Prefect REST API; the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{api_url}{path}", data=data, method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def healthy(api_url: str) -> bool:
    try:
        return api(api_url, "/health") is True
    except (OSError, ValueError):
        return False


def flow_run_count(api_url: str) -> int:
    return int(api(api_url, "/flow_runs/count", {}))


def task_run_count(api_url: str, flow_run_id: str) -> int:
    """Task runs of ``flow_run_id`` in a final state, as the server has recorded them."""
    return int(api(api_url, "/task_runs/count", {
        "flow_runs": {"id": {"any_": [flow_run_id]}},
        "task_runs": {"state": {"type": {"any_": FINAL_STATES}}},
    }))


def has_flow_run(api_url: str, flow_run_id: str) -> bool:
    try:
        return api(api_url, f"/flow_runs/{flow_run_id}")["id"] == flow_run_id
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


def flow_run_of(result: subprocess.CompletedProcess) -> tuple[str, str]:
    """(flow run id, final state name) from the line ``flow run <id>: <state>``."""
    found = FLOW_RUN.findall(result.stdout)
    assert len(found) == 1, output(result)
    return found[0]


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now (bound as uvicorn binds)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def state(home: Path) -> dict | None:
    try:
        return json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def wait_until(condition, seconds: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def stop_server_of(home: Path) -> None:
    """Stop the local server of ``home`` whatever happened: ``server stop``, then SIGKILL its
    process (and its process group) if it is still there. Only the process this home's state
    file names is touched."""
    known = state(home)
    try:
        cli("server", "stop", home=home, timeout=120)
    except subprocess.TimeoutExpired:
        pass
    if known is not None and running(int(known["pid"])) and b"prefect" in _cmdline(int(known["pid"])):
        pid = int(known["pid"])
        try:
            os.killpg(pid, signal.SIGKILL)  # started in a session of its own: the group is its own
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def row(text: str, key: str) -> str:
    """The table line whose first cell is ``key``."""
    lines = [line for line in text.splitlines() if line.split()[:1] == [key]]
    assert len(lines) == 1, f"{key!r} in:\n{text}"
    return lines[0]


def copy_shop(target: Path) -> Path:
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return target


def write_generated_project(root: Path, count: int = ASSETS, layers: int = LAYERS, modules: int = MODULES) -> list[str]:
    """A layered project of ``count`` small JSON assets: layer 0 are roots, every other asset
    reads one or two assets of the layer above. Returns the asset names."""
    rng = random.Random(18)
    per_layer = count // layers
    names = [[f"a{layer:02d}_{i:03d}" for i in range(per_layer)] for layer in range(layers)]
    package = root / "gen_assets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (root / "prefect_assets.yaml").write_text(
        "name: generated\nmodules: [gen_assets]\nio_managers:\n  default: {base_uri: ./data}\n"
        "runner: {type: thread, max_workers: 6}\n"
    )
    bodies: dict[int, list[str]] = {m: [] for m in range(modules)}
    for layer, members in enumerate(names):
        for number, name in enumerate(members):
            reads = sorted(set(rng.sample(names[layer - 1], rng.randint(1, 2)))) if layer else []
            params = ", ".join(f"{r}: dict" for r in reads)
            total = " + ".join([str(number), *(f'{r}["total"] % 97' for r in reads)])
            bodies[rng.randrange(modules)].append(textwrap.dedent(f'''
                @asset(group="layer{layer}")
                def {name}({params}) -> dict:
                    return {{"name": "{name}", "total": {total}}}
                '''))
    for module, parts in bodies.items():
        (package / f"m{module}.py").write_text("from prefect_assets import asset\n" + "".join(parts))
    return [name for members in names for name in members]


# ---------------------------------------------------------------------------------------------
# Fixtures


@dataclass(frozen=True)
class Server:
    home: Path
    api_url: str
    pid: int


@pytest.fixture(scope="module")
def local_server(tmp_path_factory, prefect_server_url, prefect_server_pid) -> Server:
    """The session's real ``prefect server start``, made the local server of a PREFECT_HOME of its
    own by the state file ``server start`` writes (starting one more server costs the suite half
    a minute; the start itself is tested by the lifecycle test). Never stopped here."""
    home = tmp_path_factory.mktemp("local-server-home")
    (home / STATE_FILE).write_text(json.dumps({"pid": prefect_server_pid, "api_url": prefect_server_url}))
    try:
        yield Server(home, prefect_server_url, prefect_server_pid)
    finally:
        (home / STATE_FILE).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def lifecycle_place(tmp_path_factory) -> tuple[Path, int]:
    """A PREFECT_HOME and port for the server the lifecycle test starts and stops; the
    start-on-demand test starts its server there again (same database, same port)."""
    home = tmp_path_factory.mktemp("lifecycle-home")
    try:
        yield home, free_port()
    finally:
        stop_server_of(home)


@pytest.fixture(scope="module")
def generated_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generated") / "project"
    names = write_generated_project(root)
    assert names == GENERATED_NAMES
    return root


@pytest.fixture
def generated(generated_template, tmp_path) -> Path:
    """A fresh copy of the 200-asset project, nothing stored."""
    return Path(shutil.copytree(generated_template, tmp_path / "project"))


@pytest.fixture(scope="module")
def shop_on_server(local_server, tmp_path_factory) -> Path:
    """The example shop, materialized once through the CLI on the module's local server."""
    root = copy_shop(tmp_path_factory.mktemp("shop-on-server") / "shop")
    before = flow_run_count(local_server.api_url)
    result = cli("materialize", cwd=root, home=local_server.home)
    assert result.returncode == 0, output(result)
    flow_run_id, final = flow_run_of(result)
    assert final == "Completed", output(result)
    assert has_flow_run(local_server.api_url, flow_run_id)
    assert flow_run_count(local_server.api_url) == before + 1  # the counting below can see a run
    return root


# ---------------------------------------------------------------------------------------------
# A port taken by another program


def test_start_on_a_port_in_use_is_refused_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("server", "start", "--port", str(port), home=tmp_path)
    assert result.returncode == 2, output(result)
    assert f"error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert state(tmp_path) is None


# ---------------------------------------------------------------------------------------------
# 2. a running local server is used, and keeps every task run


def test_materialize_uses_the_running_local_server_and_it_records_every_task_run(local_server, generated):
    before = flow_run_count(local_server.api_url)
    result = cli("materialize", cwd=generated, home=local_server.home)
    exited = time.monotonic()
    assert result.returncode == 0, output(result)
    flow_run_id, final = flow_run_of(result)
    assert final == "Completed"
    assert "embedded" not in result.stdout + result.stderr
    assert has_flow_run(local_server.api_url, flow_run_id)
    assert "Traceback" not in result.stderr, output(result)
    assert flow_run_count(local_server.api_url) == before + 1

    counts: list[int] = []
    all_recorded = wait_until(
        lambda: counts.append(task_run_count(local_server.api_url, flow_run_id)) or counts[-1] == ASSETS,
        seconds=60 - (time.monotonic() - exited),
    )
    assert all_recorded, f"{counts[-1]} of {ASSETS} task runs recorded 60 s after exit"
    # Exactly one task run per asset (none left unfinished), named after it, completed.
    assert int(api(local_server.api_url, "/task_runs/count", {"flow_runs": {"id": {"any_": [flow_run_id]}}})) == ASSETS
    runs = api(local_server.api_url, "/task_runs/filter",
               {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": ASSETS})
    assert sorted(r["name"] for r in runs) == GENERATED_NAMES, sorted(r["name"] for r in runs)[:5]
    assert {r["state_type"] for r in runs} == {"COMPLETED"}


# ---------------------------------------------------------------------------------------------
# 3. the embedded server: every task run recorded before it stops


def test_embedded_server_records_every_task_run_before_the_command_ends(generated, tmp_path):
    home = tmp_path / "embedded-home"
    home.mkdir()
    result = cli("materialize", cwd=generated, home=home, timeout=500)
    assert result.returncode == 0, output(result)
    flow_run_id, final = flow_run_of(result)
    assert final == "Completed"
    assert EMBEDDED_NOTE in result.stderr and "prefect-assets server start" in result.stderr, output(result)
    assert result.stderr.count(EMBEDDED_NOTE) == 1
    assert "Traceback" not in result.stderr and "CancelledError" not in result.stderr, output(result)
    assert state(home) is None  # nothing left running: the embedded server stopped with the command

    with sqlite3.connect(f"file:{home / 'prefect.db'}?mode=ro", uri=True) as db:
        flow_runs = db.execute("select count(*) from flow_run where id = ?", (flow_run_id,)).fetchone()[0]
        by_state = dict(db.execute(
            "select state_type, count(*) from task_run where flow_run_id = ? group by state_type", (flow_run_id,)
        ).fetchall())
    assert flow_runs == 1
    assert sum(by_state.values()) == ASSETS, by_state
    assert set(by_state) <= set(FINAL_STATES), by_state
    assert by_state == {"COMPLETED": ASSETS}, by_state


# ---------------------------------------------------------------------------------------------
# 5. PREFECT_API_URL wins (in this process; the CLI case is at the end of the module)


def test_use_local_server_yields_none_when_the_setting_is_set(local_server, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_assets.deployments.local_server import use_local_server

    monkeypatch.setenv("PREFECT_HOME", str(local_server.home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # Unset (another test's harness may have set it for the session): the local server is used.
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with use_local_server() as server:
            assert server is not None and server.pid == local_server.pid
            assert PREFECT_API_URL.value() == local_server.api_url
            assert os.environ["PREFECT_API_URL"] == local_server.api_url
        assert "PREFECT_API_URL" not in os.environ
        assert not PREFECT_API_URL.value()
    explicit = "http://127.0.0.1:9/api"
    with temporary_settings(updates={PREFECT_API_URL: explicit}), use_local_server(start_on_demand=True) as server:
        assert server is None
        assert PREFECT_API_URL.value() == explicit


# ---------------------------------------------------------------------------------------------
# 6. --dry-run


def test_dry_run_on_nothing_stored_would_run_everything_and_runs_nothing(local_server, tmp_path):
    root = copy_shop(tmp_path / "shop")
    before = flow_run_count(local_server.api_url)
    result = cli("materialize", "--dry-run", cwd=root, home=local_server.home)
    assert result.returncode == 0, output(result)
    for key in SHOP_KEYS:
        line = row(result.stdout, key)
        assert line.split()[1] == "run", line
        assert "missing" in line, line
    assert "dry run: 9 would run, 0 are fresh, 0 would be skipped, 0 would fail; nothing ran, no flow run created" \
        in result.stdout, output(result)
    assert not (root / "data").exists()
    assert flow_run_count(local_server.api_url) == before
    assert "embedded" not in result.stderr


def test_stale_dry_run_lists_a_deleted_asset_and_its_downstream(shop_on_server, local_server, tmp_path):
    root = Path(shutil.copytree(shop_on_server, tmp_path / "shop"))
    (root / "data" / "customers.parquet").unlink()
    before = flow_run_count(local_server.api_url)
    files_before = sorted(p for p in (root / "data").rglob("*"))
    result = cli("materialize", "--stale", "--dry-run", cwd=root, home=local_server.home)
    assert result.returncode == 0, output(result)
    would_run = {"customers", "orders_by_customer", "reports/revenue_by_country", "reports/top_customers"}
    for key in SHOP_KEYS:
        action = row(result.stdout, key).split()[1]
        assert action == ("run" if key in would_run else "fresh"), row(result.stdout, key)
    assert "dry run: 4 would run, 5 are fresh" in result.stdout, output(result)
    assert flow_run_count(local_server.api_url) == before
    assert sorted(p for p in (root / "data").rglob("*")) == files_before


@pytest.mark.parametrize("extra", [["--dry-run"], []])
def test_bad_selection_exits_2_in_one_line(local_server, tmp_path, extra):
    root = copy_shop(tmp_path / "shop")
    before = flow_run_count(local_server.api_url)
    result = cli("materialize", *extra, "--select", "ordrs", cwd=root, home=local_server.home)
    assert result.returncode == 2, output(result)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "ordrs" in lines[0], output(result)
    assert "orders" in lines[0]  # the close-match hint
    assert not (root / "data").exists()
    assert flow_run_count(local_server.api_url) == before


# ---------------------------------------------------------------------------------------------
# 7. --stale with nothing stale creates no flow run


def test_stale_with_nothing_stale_creates_no_flow_run(shop_on_server, local_server):
    before = flow_run_count(local_server.api_url)
    result = cli("materialize", "--stale", cwd=shop_on_server, home=local_server.home)
    assert result.returncode == 0, output(result)
    assert "all 9 selected assets are fresh: nothing to run, no flow run created" in result.stdout, output(result)
    for key in SHOP_KEYS:
        assert row(result.stdout, key).split()[1] == "fresh"
    assert not FLOW_RUN.search(result.stdout)
    assert flow_run_count(local_server.api_url) == before


# ---------------------------------------------------------------------------------------------
# 1. start, reuse, status, stop. Tests 1, 4 and 5 come last and in this order: 4 starts a server
#    on the port 1 has just stopped one on (closed connections still in TIME_WAIT), and only then
#    do two servers run at once.


def test_server_start_is_reused_reports_status_and_stops(lifecycle_place):
    home, port = lifecycle_place
    api_url = f"http://127.0.0.1:{port}/api"

    nothing = cli("server", "status", home=home)
    assert nothing.returncode == 1, output(nothing)
    assert "no local Prefect server is running" in nothing.stdout
    assert state(home) is None

    started = cli("server", "start", "--port", str(port), home=home, timeout=300)
    assert started.returncode == 0, output(started)
    pid = int(re.search(r"Prefect server started \(pid (\d+)\)", started.stdout).group(1))
    assert f"UI:       http://127.0.0.1:{port}\n" in started.stdout, output(started)
    assert f"API:      {api_url}\n" in started.stdout, output(started)
    assert healthy(api_url)
    assert running(pid) and b"prefect" in _cmdline(pid)
    assert state(home) == {"pid": pid, "api_url": api_url}
    assert (home / "prefect.db").is_file()  # its database is in the home it was given

    again = cli("server", "start", "--port", str(port), home=home, timeout=120)
    assert again.returncode == 0, output(again)
    assert f"Prefect server already running (pid {pid})" in again.stdout, output(again)
    assert "Prefect server started" not in again.stdout
    assert state(home)["pid"] == pid and running(pid)
    # Still one server for this home: no other `prefect server start` on its port.
    same_port = [p for p in os.listdir("/proc") if p.isdigit() and
                 f"--port\0{port}\0".encode() in _cmdline(int(p)) + b"\0" and b"prefect" in _cmdline(int(p))]
    assert same_port == [str(pid)], same_port

    status = cli("server", "status", home=home)
    assert status.returncode == 0, output(status)
    assert f"Prefect server running (pid {pid})" in status.stdout
    assert api_url in status.stdout

    stopped = cli("server", "stop", home=home, timeout=120)
    assert stopped.returncode == 0, output(stopped)
    assert f"stopped the Prefect server at http://127.0.0.1:{port} (pid {pid})" in stopped.stdout, output(stopped)
    assert not running(pid)
    assert not healthy(api_url)
    assert port_free(port)
    assert not (home / STATE_FILE).exists()

    stopped_again = cli("server", "stop", home=home)
    assert stopped_again.returncode == 0, output(stopped_again)
    assert "no local Prefect server is running" in stopped_again.stdout

    after = cli("server", "status", home=home)
    assert after.returncode == 1, output(after)


# ---------------------------------------------------------------------------------------------
# 4. started on demand by the project file


@pytest.fixture(scope="module")
def on_demand(lifecycle_place, tmp_path_factory):
    """The shop with ``local_server: {start_on_demand: true, port}``, materialized with no server
    running: (home, port, the command's result). The server it started is stopped after the module."""
    home, port = lifecycle_place  # the home and port of a server just stopped, when run after test 1
    root = copy_shop(tmp_path_factory.mktemp("on-demand") / "shop")
    with open(root / "prefect_assets.yaml", "a") as config:
        config.write(f"local_server: {{start_on_demand: true, port: {port}}}\n")
    assert state(home) is None, "a server is already running in this home"
    try:
        yield home, port, cli("materialize", cwd=root, home=home, timeout=500)
    finally:
        stop_server_of(home)
        assert state(home) is None and port_free(port)


def test_project_file_starts_the_local_server_on_demand_and_it_keeps_running(on_demand):
    home, port, result = on_demand
    assert result.returncode == 0, output(result)
    flow_run_id, final = flow_run_of(result)
    assert final == "Completed"
    assert "embedded" not in result.stdout + result.stderr
    known = state(home)
    assert known is not None and known["api_url"] == f"http://127.0.0.1:{port}/api", known
    # Still running after the command ended, and the run is on it.
    assert running(int(known["pid"])) and healthy(known["api_url"])
    assert has_flow_run(known["api_url"], flow_run_id)
    status = cli("server", "status", home=home)
    assert status.returncode == 0 and f"pid {known['pid']}" in status.stdout, output(status)


# ---------------------------------------------------------------------------------------------
# 5. PREFECT_API_URL wins


def test_explicit_prefect_api_url_wins_over_the_running_local_server(on_demand, local_server, tmp_path):
    """Two servers: the one started on demand is the local server of its home; the command
    runs in that home with PREFECT_API_URL naming the module's server, and lands there."""
    home, _port, _ = on_demand
    home_server = state(home)
    assert home_server is not None and healthy(home_server["api_url"])
    root = copy_shop(tmp_path / "shop")
    home_before, explicit_before = flow_run_count(home_server["api_url"]), flow_run_count(local_server.api_url)
    result = cli("materialize", "--select", "prices", cwd=root, home=home, api_url=local_server.api_url)
    assert result.returncode == 0, output(result)
    flow_run_id, _ = flow_run_of(result)
    assert has_flow_run(local_server.api_url, flow_run_id)
    assert not has_flow_run(home_server["api_url"], flow_run_id)
    assert flow_run_count(home_server["api_url"]) == home_before
    assert flow_run_count(local_server.api_url) == explicit_before + 1
    assert "embedded" not in result.stderr
