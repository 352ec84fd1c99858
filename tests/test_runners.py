"""Runners: one scenario under every runner, timeouts that bite, concurrency limits.

The scenario is a small project written to ``tmp_path``: a flaky asset that recovers by retry,
a failing asset whose downstream is skipped, an independent branch that completes. It runs
through ``materialize()`` (a real Prefect flow run against the session's test server) under
threads, processes, a local Dask cluster, an external Dask scheduler with two worker
processes (storage on the moto S3 server, so the workers share it) and Ray when installed;
every runner must give the same rows, records, Prefect states, lineage events and summary.

What the server records arrives a moment after a run returns: the tests poll for the
condition they expect, with a deadline (:data:`SERVER_DEADLINE`), and never sleep for luck.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import yaml

from prefect_assets import Definitions
from prefect_assets.assets.keys import AssetKey
from prefect_assets.errors import AssetsError
from prefect_assets.io_managers import InputContext
from prefect_assets.runner_registry import RunnerConfig
from tests.conftest import run_cli

SCENARIO = '''
import prefect.runtime

from prefect_assets import asset


@asset
def source() -> list:
    return [1, 2, 3]


@asset(retries=2)
def flaky(source: list) -> int:
    """Fails on its first attempt, succeeds on the retry."""
    if prefect.runtime.task_run.run_count < 2:
        raise RuntimeError("flaky: first attempt fails")
    return sum(source)


@asset
def broken(source: list) -> int:
    raise ValueError("broken on purpose")


@asset
def after_broken(broken: int) -> int:
    return broken + 1


@asset
def branch(source: list) -> list:
    return [x * 10 for x in source]


@asset
def branch_leaf(branch: list, flaky: int) -> dict:
    return {"total": sum(branch) + flaky}
'''

MATERIALIZED = ["source", "flaky", "branch", "branch_leaf"]


def write_project(root: Path, module: str, source: str, base_uri: str, extra: str = "",
                  storage_options: dict | None = None) -> Path:
    """A project folder with one assets module and its data under ``base_uri``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    options = f", storage_options: {json.dumps(storage_options)}" if storage_options else ""
    (root / "prefect_assets.yaml").write_text(
        f"name: {module}\nmodules: [{module}]\n"
        f"io_managers:\n  default: {{base_uri: '{base_uri}'{options}}}\n{extra}"
    )
    return root


def stored_values(defs: Definitions, keys) -> dict[AssetKey, object]:
    """What the assets ``keys`` last stored, loaded through their IO managers, as a downstream
    asset would receive it (assets never materialized are left out)."""
    records = defs.read_records(keys)
    return {
        key: defs.io_manager_for(key).load_input(InputContext(key, None, record))
        for key, record in records.items()
        if record is not None
    }


def flow_run_state(flow_run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(flow_run_id)).state


#: How long the server may take to record what a run's workers sent. Only a failing test waits
#: this long: the helpers below return as soon as the server holds what they wait for.
SERVER_DEADLINE = 60


def task_runs(flow_run_id: str, expected: dict[str, str], timeout: float = SERVER_DEADLINE) -> dict[str, object]:
    """The flow run's task runs by name, once the server holds exactly one per name in
    ``expected``, each in the state named there (``Completed``, ``Failed``, ``TimedOut``).

    The server records a task run (its name, each state) only from the events its worker sends,
    which arrive a moment after the flow run returns: poll until it holds what is expected, and
    fail at the deadline naming what it held. An event a worker never sent (say, the worker ended
    first) fails the test here, with the task run missing, Pending or Running.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=flow_run_filter)
            held = sorted((run.name, run.state.name if run.state else None) for run in runs)
            if held == sorted(expected.items()):
                return {run.name: run for run in runs}
            if time.monotonic() > deadline:
                pytest.fail(f"after {timeout} s the server holds the task runs {held}, not {sorted(expected.items())}")
            time.sleep(0.25)


def asset_events(uri_prefix: str, assets: list[str], timeout: float = SERVER_DEADLINE) -> list:
    """Prefect's asset materialization events for resources under ``uri_prefix``, once there is
    one for each of ``assets`` (resources ``uri_prefix/<asset>``).

    Events reach the server asynchronously: poll until those arrived, or the deadline.
    """
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    event_filter = EventFilter(
        event=EventNameFilter(prefix=["prefect.asset.materialization."]),
        resource=EventResourceFilter(id_prefix=[uri_prefix]),
    )
    wanted = {f"{uri_prefix}/{asset}" for asset in assets}
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=event_filter, limit=50).events
            if wanted <= {e.resource.id for e in events} or time.monotonic() > deadline:
                return events
            time.sleep(0.25)


def summary_artifact(flow_run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]))
        )
    return [a for a in artifacts if a.key == "asset-materializations"]


def _runner_params():
    params = [
        pytest.param({"type": "thread", "max_workers": 2}, id="thread"),
        pytest.param({"type": "process", "max_workers": 2}, id="process"),
        pytest.param({"type": "dask", "max_workers": 2}, id="dask-local"),
        pytest.param({"type": "dask", "address": "EXTERNAL"}, id="dask-external"),
        pytest.param({"type": "ray", "max_workers": 2}, id="ray", marks=pytest.mark.skipif(
            _missing("prefect_ray"), reason="prefect-ray not installed (pip install 'prefect-assets[ray]')")),
    ]
    return params


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


@pytest.mark.prefect
@pytest.mark.parametrize("runner", _runner_params())
def test_same_scenario_under_every_runner(runner, tmp_path, prefect_server, request):
    from prefect_assets import materialize

    if runner["type"] == "dask" and _missing("prefect_dask"):
        pytest.skip("prefect-dask not installed")
    storage_options = None
    if runner.get("address") == "EXTERNAL":
        # Separate worker processes share nothing with this one but the S3 bucket.
        runner = {"type": "dask", "address": request.getfixturevalue("dask_scheduler_address")}
        s3 = request.getfixturevalue("s3")
        base_uri = f"s3://{s3.bucket}/scenario"
        storage_options = s3.storage_options
    else:
        base_uri = str(tmp_path / "data")
    root = write_project(tmp_path / "proj", "scenario_assets", SCENARIO, base_uri,
                         extra=f"runner: {json.dumps(runner)}\n", storage_options=storage_options)
    defs = Definitions.load(root)

    result = materialize(defs)

    # The run's rows: recovered by retry, failed, skipped downstream, independent branch done.
    assert sorted(map(str, result.by_status("materialized"))) == sorted(MATERIALIZED)
    assert [str(k) for k in result.by_status("failed")] == ["broken"]
    assert "broken on purpose" in result["broken"].reason
    assert result["after_broken"].status == "skipped"
    assert result["after_broken"].reason == "upstream 'broken' failed"
    assert result.state == "Failed"

    # Records and data: in storage, readable by this process whatever ran the assets.
    records = defs.read_records([AssetKey.parse(k) for k in MATERIALIZED + ["broken", "after_broken"]])
    records = {k: r for k, r in records.items() if r is not None}
    assert sorted(str(k) for k in records) == sorted(MATERIALIZED)
    assert all(record.run_id == result.flow_run_id for record in records.values())
    leaf = AssetKey.parse("branch_leaf")
    loaded = defs.io_manager_for(leaf).load_input(InputContext(leaf, None, records[leaf]))
    assert loaded == {"total": 66}

    # What Prefect recorded: the flow run Failed, one task run per asset that ran, each in its
    # final state (sent by whatever process ran it, before that process ended), the retry.
    assert flow_run_state(result.flow_run_id).is_failed()
    runs = task_runs(result.flow_run_id, {**dict.fromkeys(MATERIALIZED, "Completed"), "broken": "Failed"})
    assert runs["flaky"].run_count == 2
    assert len(summary_artifact(result.flow_run_id)) == 1

    # Lineage: one materialization event per asset that ran, upstream assets given explicitly.
    uri_base = (base_uri if "://" in base_uri else "file://" + base_uri).rstrip("/")
    events = asset_events(uri_base, MATERIALIZED + ["broken"])
    by_asset = {e.resource.id.removeprefix(uri_base + "/"): e for e in events}
    assert sorted(by_asset) == sorted(MATERIALIZED + ["broken"])
    assert by_asset["broken"].event == "prefect.asset.materialization.failed"
    assert by_asset["branch_leaf"].event == "prefect.asset.materialization.succeeded"
    upstream = {r.id for r in by_asset["branch_leaf"].related if r.role == "asset"}
    assert upstream == {f"{uri_base}/branch", f"{uri_base}/flaky"}


SLOW = '''
import time

from prefect_assets import asset


@asset(timeout_seconds=1, retries=0)
def slow() -> int:
    time.sleep(30)          # blocking: only a signal or a killed process stops it
    return 1


@asset
def after_slow(slow: int) -> int:
    return slow


@asset
def quick() -> int:
    return 2
'''


@pytest.mark.prefect
@pytest.mark.parametrize("runner_type", ["process", "dask", "ray"])
def test_timeout_stops_a_blocking_asset(runner_type, tmp_path, prefect_server):
    """Under processes and Ray (SIGALRM on the worker's main thread) and Dask (a killed child
    process) a sleeping asset is stopped at its deadline, reported timed out, and Prefect's
    task run ends TimedOut on the server (its worker sent that before the run closed it)."""
    from prefect_assets import materialize

    if _missing(f"prefect_{runner_type}") and runner_type != "process":
        pytest.skip(f"prefect-{runner_type} not installed")
    root = write_project(tmp_path / "proj", "slow_assets", SLOW, str(tmp_path / "data"))
    defs = Definitions.load(root)

    started = time.monotonic()
    result = materialize(defs, runner=runner_type, max_workers=2)
    elapsed = time.monotonic() - started

    assert result["slow"].status == "failed"
    assert "AssetTimeoutError" in result["slow"].reason and "timed out after 1 s" in result["slow"].reason
    assert result["slow"].duration < 15, "the asset ran on instead of being stopped"
    assert result["after_slow"].status == "skipped"
    assert result["quick"].status == "materialized"
    assert elapsed < 30 + 5 and result.state == "Failed"
    task_runs(result.flow_run_id, {"slow": "TimedOut", "quick": "Completed"})
    assert defs.read_records([AssetKey.parse("slow")]).get(AssetKey.parse("slow")) is None


LATE_EVENTS = '''
import asyncio

from prefect_assets import asset


def send_events_late() -> None:
    """From now on this process sends each of its Prefect events DELAY s late, as over a slow
    link to the server: a task's last events are still queued when the task returns."""
    from prefect.events.worker import EventsWorker

    if getattr(EventsWorker, "sent_late", False):
        return
    handle = EventsWorker._handle

    async def late(self, event):
        await asyncio.sleep(DELAY)
        await handle(self, event)

    EventsWorker._handle = late
    EventsWorker.sent_late = True


@asset
def good_news() -> int:
    send_events_late()
    return 1


@asset
def bad_news() -> int:
    send_events_late()
    raise ValueError("bad news")
'''


@pytest.mark.prefect
@pytest.mark.parametrize("runner_type", ["process", "dask", "ray"])
def test_a_workers_late_events_reach_the_server_before_the_worker_ends(runner_type, tmp_path, prefect_server):
    """The worker processes of these runners end with the run (the process pool's, a local Dask
    cluster's, local Ray's), right after its last asset, and a process that ends so never sends
    what its Prefect ``EventsWorker`` still holds. So a worker sends a task's events before the
    task returns: with every event sent 2 s late, each task run still reaches the server in its
    final state. (Without that wait, a local Dask cluster closed with them queued and the server
    kept both task runs Pending.) Threads and a standing cluster are left out: the late sending
    would outlive the test in this process or in the cluster's workers."""
    from prefect_assets import materialize

    if _missing(f"prefect_{runner_type}") and runner_type != "process":
        pytest.skip(f"prefect-{runner_type} not installed")
    root = write_project(tmp_path / "proj", f"late_events_{runner_type}_assets", LATE_EVENTS.replace("DELAY", "2"),
                         str(tmp_path / "data"))

    result = materialize(Definitions.load(root), runner=runner_type, max_workers=2)

    assert (result["good_news"].status, result["bad_news"].status) == ("materialized", "failed")
    task_runs(result.flow_run_id, {"good_news": "Completed", "bad_news": "Failed"})


@pytest.mark.prefect
def test_thread_timeout_says_it_cannot_interrupt(tmp_path, prefect_server):
    """Threads cannot be interrupted in a blocking call: the asset is reported timed out once
    the call returns (its task run ends TimedOut), nothing is stored, and the error says why
    and what to use instead."""
    from prefect_assets import materialize

    source = SLOW.replace("time.sleep(30)", "time.sleep(2.5)")
    root = write_project(tmp_path / "proj", "slow_thread_assets", source, str(tmp_path / "data"))
    defs = Definitions.load(root)

    result = materialize(defs, select="slow", runner="thread")

    reason = result["slow"].reason
    assert result["slow"].status == "failed"
    assert "timed out" in reason and "thread runner cannot interrupt a blocking call" in reason
    assert "use runner process, dask or ray" in reason
    assert defs.read_records([AssetKey.parse("slow")]).get(AssetKey.parse("slow")) is None
    task_runs(result.flow_run_id, {"slow": "TimedOut"})


LIMITED = '''
import time
from datetime import datetime, timezone

from prefect_assets import asset


def _hold() -> dict:
    start = time.time()
    time.sleep(1.0)
    return {"start": start, "end": time.time()}

''' + "".join(
    f'''
@asset(concurrency="LIMIT")
def slot_{i}() -> dict:
    return _hold()
''' for i in range(6))


@pytest.mark.prefect
@pytest.mark.parametrize("runner", ["{type: thread, max_workers: 6}", "{type: process, max_workers: 3}"],
                         ids=["thread", "process"])
def test_concurrency_limit_caps_overlap(runner, tmp_path, prefect_server):
    """Six assets on a limit of 2, more workers than that: never more than two at once,
    measured from the start/end times the assets recorded themselves; the YAML limit replaces
    the one found on the server. Under the process pool the slots are taken from the workers."""
    from prefect.client.orchestration import get_client

    from prefect_assets import materialize

    limit_name = f"warehouse-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(limit_name, 5)  # to be updated to 2
    root = write_project(
        tmp_path / "proj", "limited_assets", LIMITED.replace("LIMIT", limit_name), str(tmp_path / "data"),
        extra=f"concurrency_limits: {{{limit_name}: 2}}\nrunner: {runner}\n",
    )
    defs = Definitions.load(root)

    result = materialize(defs)

    assert result.success, result.summary_rows()
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(limit_name).limit == 2
    spans = list(stored_values(defs, defs.graph.keys).values())
    assert len(spans) == 6
    edges = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2, f"expected exactly two at a time, saw {peak}"


@pytest.mark.prefect
def test_undeclared_missing_limit_stops_the_run(tmp_path, prefect_server):
    from prefect_assets import materialize

    source = LIMITED.replace("LIMIT", "nowhere-declared")
    root = write_project(tmp_path / "proj", "unlimited_assets", source, str(tmp_path / "data"))
    with pytest.raises(AssetsError, match="concurrency limit 'nowhere-declared', which is not on the Prefect server"):
        materialize(Definitions.load(root), select="slot_0")


@pytest.mark.prefect
def test_cli_process_runner_materializes_the_example(project, prefect_server):
    done = run_cli("materialize", "--runner", "process", "--max-workers", "2", cwd=project, api_url=prefect_server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Completed" in done.stdout
    assert "tags but only" not in done.stderr  # Prefect's tag-concurrency warning means nothing here
    assert (project / "data" / "reports" / "kpis.json").exists()


@pytest.mark.prefect
def test_cli_example_on_external_dask_cluster_with_s3(project, prefect_server, dask_scheduler_address, s3):
    """The example shop, storage on S3, run by workers in other processes with another cwd."""
    config_file = project / "prefect_assets.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["io_managers"]["default"] = {"base_uri": f"s3://{s3.bucket}/shop", "storage_options": s3.storage_options}
    config["runner"] = {"type": "dask", "address": dask_scheduler_address}
    config_file.write_text(yaml.safe_dump(config))
    done = run_cli("materialize", cwd=project, api_url=prefect_server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert s3.filesystem().exists(f"{s3.bucket}/shop/reports/kpis.json")


WORKER_FACTS = '''
import os

from prefect_assets import AssetContext, asset

MARK_AT_IMPORT = os.environ.get("PA_TEST_MARK")  # read before Prefect hands the task its environment


@asset
def facts(context: AssetContext) -> dict:
    context.log.warning("facts from a worker: VERSION")
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as parent:
        started_by = parent.read().replace(b"\\0", b" ").decode()
    return {"code": "VERSION", "pid": os.getpid(), "started_by": started_by, "mark": MARK_AT_IMPORT}
'''


@pytest.mark.prefect
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the worker's parent from /proc")
@pytest.mark.parametrize("runner_type", ["process", "dask"])
def test_workers_fork_from_the_forkserver_and_run_edited_code(runner_type, tmp_path, prefect_server, monkeypatch):
    """Process-pool and local Dask workers are forked from the forkserver, yet each run's
    workers are new processes: an asset edited between two runs in the same Python process
    runs its new code, and a variable set in between is in the workers' environment. The
    workers' log lines still reach the flow run on the Prefect server."""
    from prefect_assets import materialize
    from tests.prefect_output import prefect_texts

    if runner_type == "dask" and _missing("prefect_dask"):
        pytest.skip("prefect-dask not installed")
    module = f"facts_{runner_type}_assets"
    root = write_project(tmp_path / "proj", module, WORKER_FACTS.replace("VERSION", "first"), str(tmp_path / "data"))
    key = AssetKey.parse("facts")

    def run() -> dict:
        defs = Definitions.load(root)
        result = materialize(defs, runner=runner_type, max_workers=1)
        assert result.success, result.summary_rows()
        facts = stored_values(defs, [key])[key]
        prefect_texts(result.flow_run_id, wait_for=f"facts from a worker: {facts['code']}")
        return facts

    monkeypatch.setenv("PA_TEST_MARK", "before the edit")
    first = run()
    (root / f"{module}.py").write_text(textwrap.dedent(WORKER_FACTS.replace("VERSION", "second, edited")))
    monkeypatch.setenv("PA_TEST_MARK", "after the edit")
    second = run()

    assert "multiprocessing.forkserver" in first["started_by"], first["started_by"]
    assert (first["code"], first["mark"]) == ("first", "before the edit")
    assert (second["code"], second["mark"]) == ("second, edited", "after the edit")
    assert second["pid"] != first["pid"]


CLIENT_PROBES = """
import os

from prefect_assets import asset


def api_client() -> dict:
    # The client the asset's task uses: its worker, a mark it keeps for life, its server.
    import uuid

    from prefect.client.orchestration import get_client

    client = get_client(sync_client=True)
    if not hasattr(client, "probe_mark"):  # a client built for this task has none yet
        client.probe_mark = uuid.uuid4().hex
    return {"pid": os.getpid(), "client": client.probe_mark, "url": str(client.api_url)}


@asset
def probe_a() -> dict:
    return api_client()


@asset
def probe_b() -> dict:
    return api_client()


@asset
def probe_c() -> dict:
    return api_client()
"""


@pytest.mark.parametrize("runner", [
    pytest.param({"type": "process", "max_workers": 1}, id="process"),
    pytest.param({"type": "dask", "max_workers": 1}, id="dask-local",
                 marks=pytest.mark.skipif(_missing("prefect_dask"), reason="prefect-dask not installed")),
    pytest.param({"type": "dask", "address": "EXTERNAL"}, id="dask-address",
                 marks=pytest.mark.skipif(_missing("prefect_dask"), reason="prefect-dask not installed")),
])
def test_a_worker_runs_all_its_assets_of_a_run_with_one_client_of_the_run(runner, tmp_path, prefect_server, request):
    """Each process-pool or Dask worker opens one API client with the run's settings and every
    asset of the run it runs uses it (instead of building two per asset); the client talks to
    the run's server. The next run gets its own: new workers, or on a standing Dask cluster the
    same workers with a new client."""
    from prefect_assets import materialize

    if runner.get("address") == "EXTERNAL":
        runner = {"type": "dask", "address": request.getfixturevalue("dask_scheduler_address")}
    root = write_project(tmp_path / "proj", "client_probe_assets", CLIENT_PROBES, str(tmp_path / "data"),
                         extra=f"runner: {json.dumps(runner)}\n")

    def run() -> list[dict]:
        defs = Definitions.load(root)
        result = materialize(defs)
        assert result.success, result.summary_rows()
        return list(stored_values(defs, defs.graph.keys).values())

    first, second = run(), run()
    for probes in (first, second):
        assert len(probes) == 3
        workers = {p["pid"] for p in probes}
        assert len(workers) < len(probes)  # some worker ran two assets: they shared its client
        assert len({(p["pid"], p["client"]) for p in probes}) == len(workers), probes  # one per worker
        assert {p["url"].rstrip("/") for p in probes} == {prefect_server.rstrip("/")}
    assert not {p["client"] for p in first} & {p["client"] for p in second}


def test_a_standing_workers_client_of_an_old_run_closes_only_when_its_last_asset_ends(prefect_server):
    """A standing Dask worker keeps the clients of its last RUNS_REMEMBERED runs: an older run's
    client is retired then, but stays open until that run's asset still running there ends.
    (Tasks called here as a worker calls them, in this process.)"""
    from prefect.client.orchestration import get_client
    from prefect.context import SettingsContext, SyncClientContext

    from prefect_assets.flows.runners.worker_client import RunWithClientOfRun
    from prefect_assets.flows.runners.worker_settings import RUNS_REMEMBERED

    settings_context = {"settings_context": SettingsContext.get().serialize()}  # as sent with a task

    def task_of_run(run: str, body=lambda: None):
        def run_task(context: dict):
            body()
            return get_client(sync_client=True)

        current = SyncClientContext.get()
        client = RunWithClientOfRun(run_task, run)(context=settings_context)
        assert SyncClientContext.get() is current  # the run's client is current only in the task
        return client

    def newer_runs_start() -> None:  # while the old run's asset is still running
        for _ in range(RUNS_REMEMBERED):
            task_of_run(uuid.uuid4().hex)
        old_client.hello()  # retired, still open for the asset that uses it

    old_run = uuid.uuid4().hex
    old_client = task_of_run(old_run)
    assert task_of_run(old_run) is old_client  # the run's later assets on this worker share it
    assert task_of_run(uuid.uuid4().hex) is not old_client
    assert task_of_run(old_run, body=newer_runs_start) is old_client
    with pytest.raises(RuntimeError, match="closed"):
        old_client.hello()  # closed once its last asset ended
    assert task_of_run(old_run) is not old_client  # a late asset of that run opens a new one


@pytest.mark.skipif(_missing("distributed"), reason="distributed not installed")
def test_a_runs_local_dask_cluster_samples_less_unless_the_user_configured_dask(monkeypatch):
    """A run's local cluster turns down Dask's background sampling in its workers (the
    profiler, event-loop health checks, system monitor: CPU the assets need), keeps any of
    those keys the user configured (a DASK_* variable, a value set in code), and leaves the
    process's own Dask config as it was."""
    import dask
    from distributed import Client

    from prefect_assets.flows.runners.dask_local_cluster import QUIET_CLUSTER, local_dask_cluster

    def workers_config() -> dict:
        cluster = local_dask_cluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0")
        with cluster, Client(cluster) as client:
            (config,) = client.run(lambda: {key: dask.config.get(key) for key in QUIET_CLUSTER}).values()
        return config

    own = {key: dask.config.get(key) for key in QUIET_CLUSTER}
    assert workers_config() == QUIET_CLUSTER
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "True")
    with dask.config.set({"distributed.admin.tick.interval": "250ms"}):
        assert workers_config() == {
            **QUIET_CLUSTER,
            "distributed.worker.profile.enabled": True,
            "distributed.admin.tick.interval": "250ms",
        }
    assert {key: dask.config.get(key) for key in QUIET_CLUSTER} == own


@pytest.mark.skipif(_missing("distributed"), reason="distributed not installed")
def test_a_runs_local_dask_cluster_starts_with_the_run_and_never_outlives_it():
    """materialize() starts the local cluster as the run begins, and the run's first submit
    (prefect-dask calling local_dask_cluster) gets that one; one that no asset claimed (a run
    that failed first, or had nothing to run) is closed with its worker processes."""
    import psutil

    from prefect_assets.flows.runners.dask_local_cluster import (
        local_cluster_kwargs,
        local_cluster_started_early,
        local_dask_cluster,
    )

    config = RunnerConfig(type="dask", max_workers=1)

    def forked_workers() -> set[int]:  # the forkserver's children
        return {p.pid for p in psutil.Process().children(recursive=True) if p.parent() and p.parent().pid != os.getpid()
                and "forkserver" in " ".join(p.cmdline())}

    with local_cluster_started_early(config):
        time.sleep(0.5)  # the run's own set-up
        first_submit = time.time()
        cluster = local_dask_cluster(**local_cluster_kwargs(config))
    try:
        assert cluster.scheduler.time_started < first_submit
        assert cluster.status.name == "running"  # the run's task runner closes it, not the block
    finally:
        cluster.close()

    before = forked_workers()
    with local_cluster_started_early(config):
        time.sleep(0.5)
    deadline = time.monotonic() + 30
    while forked_workers() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not forked_workers() - before


# --- runner construction: no flow run needed -------------------------------------------------


def test_missing_extra_is_one_line_naming_the_install(monkeypatch):
    from prefect_assets.flows.runners.backend import make_task_runner

    for module, extra in [("prefect_dask", "dask"), ("prefect_ray", "ray")]:
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
        with pytest.raises(AssetsError) as info:
            make_task_runner(RunnerConfig(type=extra))
        assert str(info.value) == f"runner '{extra}' needs the {extra} extra: pip install 'prefect-assets[{extra}]'"


def test_cli_missing_extra_exits_2(project, tmp_path):
    """The CLI prints the same line and exits 2, without a traceback."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "prefect_dask.py").write_text("raise ImportError('simulated: prefect-dask not installed')\n")
    done = run_cli("materialize", "--runner", "dask", cwd=project, env={"PYTHONPATH": str(blocker)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'prefect-assets[dask]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_runner_options_that_would_be_ignored_are_errors():
    from prefect_assets.runner_registry import runner_config

    with pytest.raises(AssetsError, match="runner: address is for dask or ray clusters, not the process runner"):
        runner_config({"type": "process", "address": "tcp://127.0.0.1:8786"})
    with pytest.raises(AssetsError, match="cannot resize the existing dask cluster"):
        runner_config({"type": "dask", "address": "tcp://127.0.0.1:8786", "max_workers": 2})
    with pytest.raises(AssetsError, match="cannot resize the existing dask cluster"):
        runner_config({"type": "dask", "address": "tcp://127.0.0.1:8786"}, max_workers=2)  # --max-workers
    with pytest.raises(AssetsError, match=r"runner.type: unknown runner 'thred' \(did you mean 'thread'\?\)"):
        runner_config({}, "thred")


def test_command_line_runner_type_drops_the_configured_address():
    from prefect_assets.runner_registry import runner_config

    configured = RunnerConfig(type="dask", address="tcp://127.0.0.1:8786")
    assert runner_config(configured, "thread", None) == RunnerConfig(type="thread")
    assert runner_config(configured, "dask", None) == configured


def test_max_workers_reaches_every_runner():
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    from prefect_assets.flows.runners.backend import make_task_runner

    thread = make_task_runner(RunnerConfig(type="thread", max_workers=3))
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 3
    default_thread = make_task_runner(RunnerConfig(type="thread"))
    assert default_thread._max_workers <= 32  # bounded, unlike Prefect's own default
    process = make_task_runner(RunnerConfig(type="process", max_workers=3))
    assert isinstance(process, ProcessPoolTaskRunner) and process._max_workers == 3
    duplicate = process.duplicate()  # what Prefect runs: a copy per flow run, still forking
    assert type(duplicate) is type(process) and duplicate._max_workers == 3
    if not _missing("prefect_dask"):
        dask = make_task_runner(RunnerConfig(type="dask", max_workers=3))
        assert dask.cluster_kwargs["n_workers"] == 3 and dask.cluster_kwargs["threads_per_worker"] == 1
        assert make_task_runner(RunnerConfig(type="dask", address="tcp://127.0.0.1:1")).address == "tcp://127.0.0.1:1"
    if not _missing("prefect_ray"):
        ray = make_task_runner(RunnerConfig(type="ray", max_workers=3))
        assert ray.init_kwargs["num_cpus"] == 3


def test_workers_get_the_settings_of_the_run_that_submits_them():
    """Workers receive settings serialized once per run and rebuild them once per run: the
    run's own settings every time, equal to what Prefect itself sends and builds."""
    import cloudpickle
    from prefect.context import SettingsContext, serialize_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_assets.flows.runners.worker_settings import settings_serialized_once

    def hydrated(serialized: dict) -> SettingsContext:  # what a worker does with it
        return SettingsContext(**cloudpickle.loads(cloudpickle.dumps(serialized)))

    built_per_run = []
    for url in ("http://127.0.0.1:4201/api", "http://127.0.0.1:4202/api"):
        with temporary_settings(updates={PREFECT_API_URL: url}), settings_serialized_once():
            first = serialize_context()["settings_context"]
            assert serialize_context()["settings_context"] is first  # serialized once for the run
            in_worker = hydrated(first)
            assert str(in_worker.settings.api.url) == url
            assert hydrated(serialize_context()["settings_context"]).settings is in_worker.settings  # built once
            built_per_run.append(in_worker.settings)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            prefects_own = serialize_context()["settings_context"]
            assert prefects_own == first  # what Prefect itself sends
            assert hydrated(prefects_own).settings == in_worker.settings  # and builds from it
    assert built_per_run[0] is not built_per_run[1]


def test_assets_import_in_a_process_started_elsewhere(tmp_path):
    """A pickled asset carries its module's root: a fresh interpreter in another cwd, without
    the project on sys.path, imports it (what Dask and Ray workers do)."""
    import pickle
    import subprocess

    import prefect_assets.flows  # noqa: F401 - flows own how assets cross processes

    root = write_project(tmp_path / "proj", "roaming_assets", SCENARIO, str(tmp_path / "data"))
    defs = Definitions.load(root)
    payload = pickle.dumps(defs.definition(AssetKey.parse("branch")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "import pickle, sys; d = pickle.loads(sys.stdin.buffer.read()); print(d([1, 2]))"
    done = subprocess.run([sys.executable, "-c", code], check=False, input=payload, cwd=elsewhere, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "[10, 20]"



CHILD = '''
import time

from prefect_assets import AssetContext, Output, asset


@asset
def numbers() -> list:
    return [1, 2, 3]


@asset
def total(context: AssetContext, numbers: list) -> Output:
    context.log.info("adding %d numbers", len(numbers))
    print("a print goes to stderr, not into the protocol")
    return Output(sum(numbers), metadata={"n": len(numbers)})


@asset
def fails(numbers: list) -> int:
    raise KeyError("no such thing")


@asset
def sleeps() -> int:
    time.sleep(30)
    return 0
'''


def test_compute_in_subprocess_returns_logs_raises_and_times_out(tmp_path):
    """The child process behind Dask timeouts: value and metadata come back, log lines are
    replayed on the context's logger, the asset's exception is re-raised, and at the deadline
    the child is killed."""
    import logging

    from prefect_assets.assets.context import AssetContext
    from prefect_assets.flows.compute import AssetTimeoutError, compute_in_subprocess
    from prefect_assets.flows.plan import prepare_run
    from prefect_assets.flows.tasks import materialize_asset

    root = write_project(tmp_path / "proj", "child_assets", CHILD, str(tmp_path / "data"))
    defs = Definitions.load(root)
    plan = prepare_run(defs)
    runs = {str(k): run for k, run in plan.runs.items()}
    numbers = materialize_asset(runs["numbers"], {})
    upstream = {"numbers": numbers}
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log = logging.getLogger(f"test.child.{uuid.uuid4().hex}")
    log.setLevel(logging.INFO)
    log.addHandler(Collect())

    def context(key: str) -> AssetContext:
        return AssetContext(key=AssetKey.parse(key), run_id="run-1", log=log)

    computed = compute_in_subprocess(runs["total"], upstream, context("total"), timeout_seconds=60)
    assert (computed.value, computed.metadata) == (6, {"n": 3})
    assert lines == ["adding 3 numbers"]

    with pytest.raises(KeyError, match="no such thing"):
        compute_in_subprocess(runs["fails"], upstream, context("fails"), timeout_seconds=60)

    started = time.monotonic()
    with pytest.raises(AssetTimeoutError, match="its process was stopped"):
        compute_in_subprocess(runs["sleeps"], {}, context("sleeps"), timeout_seconds=1.5)
    assert time.monotonic() - started < 10
