"""Deployments: specs, ``serve``, ``deploy`` + a worker, ``run`` — against a real Prefect server.

The unit tests at the top need no server. The rest use one ``prefect server start`` per
session (tests/prefect_server_process.py) and run ``prefect-assets`` and ``prefect worker``
as subprocesses, the way a user would; every wait is bounded and every subprocess is stopped
in ``finally``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from prefect_assets.config import load_project
from prefect_assets.definitions import Definitions
from prefect_assets.deployments.build import run_parameters, runner_deployment
from prefect_assets.deployments.run import check_overrides
from prefect_assets.deployments.spec import check_selections, load_deployments, pick
from prefect_assets.errors import AssetsError
from prefect_assets.flows.entry import resolve_partition
from tests.conftest import run_cli
from tests.prefect_server_process import start_process, stop_process, tail

ENTRYPOINT = "prefect_assets.flows.entry.materialize_assets"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def one_line_error(result, *fragments: str) -> None:
    """Exit 2, one line on stderr containing every fragment, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------- specs (no server)


def test_example_nightly_deployment_loads_and_builds(project: Path) -> None:
    loaded = load_project(project)
    specs = load_deployments(loaded)
    assert [s.name for s in specs] == ["nightly"]
    nightly = specs[0]
    check_selections(specs, Definitions.load(loaded).graph)
    assert [s.describe() for s in nightly.all_schedules] == ["cron 0 2 * * * (Europe/Berlin)"]
    assert nightly.concurrency == 1 and nightly.work_pool == "shop"

    deployment = runner_deployment(nightly, loaded, work_pool="shop")
    assert deployment.flow_name == "materialize-shop"
    assert deployment.entrypoint == ENTRYPOINT  # a module path: found wherever the package is installed
    assert deployment.parameters == {"project": str(loaded.root), "select": "*", "timezone": "Europe/Berlin",
                                     "stale_only": False}
    assert deployment.concurrency_limit == 1
    assert deployment.storage.to_pull_step() == {
        "prefect.deployments.steps.set_working_directory": {"directory": str(loaded.root)}
    }
    assert deployment.schedules[0].schedule.cron == "0 2 * * *"
    assert deployment.schedules[0].schedule.timezone == "Europe/Berlin"


def test_deployments_from_project_file_and_several_schedules(project: Path) -> None:
    config = project / "prefect_assets.yaml"
    config.write_text(config.read_text() + textwrap.dedent("""
        deployments:
          - name: reports
            select: "group:reports"
            schedules:
              - {interval: 3600}
              - {rrule: "FREQ=WEEKLY;BYDAY=MO;BYHOUR=6", timezone: "America/New_York"}
            partition: 2026-01-05
            parameters: {stale_only: true, max_workers: 2}
            concurrency: null
    """))
    loaded = load_project(project)
    specs = pick(load_deployments(loaded), ["reports"], "shop")
    spec = specs[0]
    assert spec.origin.endswith("prefect_assets.yaml: deployments[0]")
    assert [s.describe() for s in spec.all_schedules] == [
        "every 3600s", "rrule FREQ=WEEKLY;BYDAY=MO;BYHOUR=6 (America/New_York)",
    ]
    assert spec.partition == "2026-01-05"  # YAML read a date; the key is its ISO text
    assert spec.concurrency is None
    assert run_parameters(spec, loaded) == {
        "project": str(loaded.root), "select": "group:reports", "partition": "2026-01-05",
        "timezone": "America/New_York", "stale_only": True, "max_workers": 2,
    }


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("schedule: {cron: '0 25 * * *'}", ["schedule.cron", "Invalid cron string", "e.g. '0 2 * * *'"]),
        ("schedule: {cron: '0 2 * * *', timezone: Europe/Berln}", ["schedule.timezone", "'Europe/Berln'"]),
        ("schedule: {crn: '0 2 * * *'}", ["unknown field 'schedule.crn'", "did you mean 'cron'"]),
        ("shedule: {interval: 60}", ["unknown field 'shedule'", "did you mean 'schedule'"]),
        ("schedule: {interval: 60, cron: '* * * * *'}", ["schedule:", "exactly one of cron, interval or rrule"]),
        ("schedule: {interval: -5}", ["schedule.interval", "greater than 0"]),
        ("schedule: {rrule: 'FREQ=SOMETIMES'}", ["schedule.rrule", "RFC 5545"]),
        ("partition: yesterdy", ["partition:", "misspelling of 'yesterday'"]),
        ("parameters: {select: orders}", ["'parameters.select' is a field of its own"]),
        ("parameters: {runner: threads}", ["parameters.runner"]),
        ("concurrency: 0", ["concurrency", "greater than or equal to 1"]),
        ("source: {git: 'https://example.com/shop.git', directory: ../elsewhere}", ["source.directory", "relative"]),
        ("source: {url: 'https://example.com/shop.git'}", ["unknown field 'source.url'"]),
    ],
)
def test_spec_errors_name_file_and_field(project: Path, body: str, fragments: list[str]) -> None:
    file = write(project / "deployments" / "bad.yaml", f"name: bad\n{body}\n")
    with pytest.raises(AssetsError) as caught:
        load_deployments(load_project(project))
    message = str(caught.value)
    assert message.startswith(f"{file}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_selection_and_duplicate_names(project: Path) -> None:
    loaded = load_project(project)
    file = write(project / "deployments" / "typo.yaml", "name: typo\nselect: 'ordrs+'\n")
    with pytest.raises(AssetsError, match=r"typo\.yaml: select: .*no asset 'ordrs' \(did you mean 'orders'"):
        check_selections(load_deployments(loaded), Definitions.load(loaded).graph)

    file.write_text("name: nightly\n")
    with pytest.raises(AssetsError, match=r"typo\.yaml: name: deployment 'nightly' is also defined in .*nightly\.yaml"):
        load_deployments(loaded)


def test_pick_unknown_name_suggests(project: Path) -> None:
    specs = load_deployments(load_project(project))
    with pytest.raises(AssetsError, match=r"no deployment 'nighty' \(did you mean 'nightly'\?\) in project 'shop'"):
        pick(specs, ["nighty"], "shop")


def test_resolve_partition_uses_scheduled_time_and_zone() -> None:
    # 23:30 UTC on 1 March is already 2 March in Berlin: yesterday there is 1 March.
    scheduled = datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)
    assert resolve_partition("yesterday", scheduled) == "2026-02-28"
    assert resolve_partition("yesterday", scheduled, "Europe/Berlin") == "2026-03-01"
    assert resolve_partition("latest", scheduled, "Europe/Berlin") == "2026-03-01"
    assert resolve_partition("2025-12-24", scheduled) == "2025-12-24"
    assert resolve_partition(None, scheduled) is None


def test_run_param_overrides_are_checked() -> None:
    assert check_overrides({"select": "prices", "partition": 20260105, "stale_only": True}) == {
        "select": "prices", "partition": "20260105", "stale_only": True,
    }
    with pytest.raises(AssetsError, match=r"--param selct: unknown \(did you mean 'select'\?\)"):
        check_overrides({"selct": "prices"})
    with pytest.raises(AssetsError, match=r"--param max_workers"):
        check_overrides({"max_workers": 0})


def test_cli_errors_before_any_server(project: Path, tmp_path: Path) -> None:
    write(project / "deployments" / "typo.yaml", "name: typo\nselect: 'ordrs+'\n")
    one_line_error(run_cli("serve", "typo", cwd=project), "typo.yaml: select:", "did you mean 'orders'")
    one_line_error(run_cli("deploy", "nope", cwd=project), "no deployment 'nope'")
    write(project / "deployments" / "adhoc.yaml", "name: adhoc\nselect: prices\n")
    one_line_error(run_cli("deploy", "adhoc", cwd=project), "adhoc.yaml: work_pool:", "pass --pool POOL")
    # No PREFECT_API_URL: Prefect would start a throwaway server that runs no schedules.
    one_line_error(run_cli("deploy", "nightly", cwd=project), "PREFECT_API_URL is not set", "prefect-assets server start")


# ---------------------------------------------------------------- against a real server


@contextmanager
def prefect_api(api_url: str) -> Iterator:
    """A sync Prefect client for the test server (this process has no PREFECT_API_URL)."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        yield client


def completed_runs(client, deployment_name: str) -> list:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound

    try:
        deployment = client.read_deployment_by_name(deployment_name)
    except ObjectNotFound:
        return []
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))),
    )


def task_run_states(client, flow_run_id) -> dict[str, str]:
    """``{task run name: state name}``, once the server has recorded them all (see ``task_runs``)."""
    from prefect_assets.deployments.run import task_runs

    return {run.name: run.state.name for run in task_runs(client, flow_run_id)}


def cli_env(api_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, **extra}


def test_entry_flow_runs_on_the_project_runner(project: Path, prefect_server_url: str) -> None:
    """The deployable flow is made at import, yet its assets run on the runner the project configures."""
    import yaml
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_assets.flows.entry import materialize_assets

    write(project / "shop_assets" / "probe.py", """\
        import os

        from prefect_assets import asset


        @asset(group="probe")
        def where_it_ran() -> dict:
            return {"pid": os.getpid()}
    """)
    config_file = project / "prefect_assets.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["runner"] = {"type": "process", "max_workers": 1}
    config_file.write_text(yaml.safe_dump(config))
    stored = project / "data" / "where_it_ran.json"

    with temporary_settings({PREFECT_API_URL: prefect_server_url}):
        state = materialize_assets(project=str(project), select="where_it_ran", return_state=True)
        assert state.is_completed(), state
        assert json.loads(stored.read_text())["pid"] != os.getpid()  # a process-pool worker

        state = materialize_assets(project=str(project), select="where_it_ran", runner="thread", return_state=True)
        assert state.is_completed(), state
        assert json.loads(stored.read_text())["pid"] == os.getpid()  # the override: threads here

        state = materialize_assets(project=str(project), select="where_it_rn", return_state=True)
        assert state.is_failed() and "did you mean 'where_it_ran'" in state.message
        APILogWorker.drain_all(timeout=10)  # send this process's run logs now, while the server is up


def test_serve_runs_an_interval_schedule(project: Path, prefect_server_url: str, tmp_path: Path) -> None:
    write(project / "deployments" / "often.yaml", """\
        name: often
        select: "+paid_orders"
        schedule: {interval: 3}
        tags: [pytest]
    """)
    log = tmp_path / "serve.log"
    # The runner polls the server every second instead of every ten: the test waits less.
    env = cli_env(prefect_server_url, PREFECT_RUNNER_POLL_FREQUENCY="1")
    serve = start_process([sys.executable, "-m", "prefect_assets.cli", "serve", "often"], env, log, cwd=project)
    try:
        deadline = time.monotonic() + 120
        with prefect_api(prefect_server_url) as client:
            while len(runs := completed_runs(client, "materialize-shop/often")) < 2:
                assert serve.poll() is None, f"serve exited with {serve.returncode}:\n{tail(log)}"
                assert time.monotonic() < deadline, f"fewer than 2 completed runs after 120 s:\n{tail(log)}"
                time.sleep(1)
            for flow_run in runs:
                assert flow_run.auto_scheduled, "runs came from the schedule, not from a trigger"
                assert flow_run.parameters["project"] == str(project.resolve())
                assert task_run_states(client, flow_run.id) == {
                    "orders": "Completed", "prices": "Completed", "paid_orders": "Completed",
                }
    finally:
        stop_process(serve)
    data = project / "data"
    assert {p.name for p in data.iterdir()} >= {"orders.parquet", "prices.json", "paid_orders.parquet"}
    assert not (data / "customers.parquet").exists()  # outside the selection
    assert (data / "_prefect_assets" / "records" / "paid_orders.json").exists()


@pytest.fixture(scope="module")
def worker_pool(prefect_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A process work pool served by a real ``prefect worker start``; yields the pool's name."""
    from prefect.exceptions import ObjectNotFound

    pool = f"pytest-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = cli_env(prefect_server_url, PREFECT_WORKER_QUERY_SECONDS="1")
    worker = start_process(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"], env, log,
    )
    try:
        deadline = time.monotonic() + 60
        with prefect_api(prefect_server_url) as client:
            while True:  # the worker creates its pool when it starts
                try:
                    client.read_work_pool(pool)
                    break
                except ObjectNotFound:
                    assert worker.poll() is None, f"worker exited:\n{tail(log)}"
                    assert time.monotonic() < deadline, f"no pool after 60 s:\n{tail(log)}"
                    time.sleep(0.5)
        yield pool
    finally:
        stop_process(worker)


def test_deploy_and_worker_run_the_nightly_deployment(project: Path, prefect_server_url: str, worker_pool: str) -> None:
    deployed = run_cli("deploy", "nightly", "--pool", worker_pool, cwd=project, api_url=prefect_server_url, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    assert "materialize-shop/nightly" in deployed.stdout
    assert f"prefect worker start --pool {worker_pool}" in deployed.stdout

    with prefect_api(prefect_server_url) as client:
        deployment = client.read_deployment_by_name("materialize-shop/nightly")
    assert deployment.work_pool_name == worker_pool
    assert deployment.entrypoint == ENTRYPOINT
    # The code location: the worker changes into the project before loading the flow.
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(project.resolve())}}
    ]

    ran = run_cli("run", "nightly", "--wait", "--timeout", "150", cwd=project, api_url=prefect_server_url, timeout=180)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    assert "/runs/flow-run/" in ran.stdout
    assert "Completed" in ran.stdout.splitlines()[-1]
    for key in ("orders", "customers", "reports/kpis", "reports/top_customers"):
        assert key in ran.stdout
    data = project / "data"
    for stored in ("orders.parquet", "customers.parquet", "reports/kpis.json", "reports/revenue_by_country.parquet"):
        assert (data / stored).exists(), stored


def test_run_wait_exits_1_when_an_asset_fails(project: Path, prefect_server_url: str, worker_pool: str) -> None:
    write(project / "shop_assets" / "broken.py", """\
        from prefect_assets import asset


        @asset(group="broken")
        def exploding() -> dict:
            raise RuntimeError("the upstream API is down")
    """)
    write(project / "deployments" / "broken.yaml", f"name: broken\nselect: exploding\nwork_pool: {worker_pool}\n")
    deployed = run_cli("deploy", "broken", cwd=project, api_url=prefect_server_url, timeout=120)
    assert deployed.returncode == 0, deployed.stderr

    ran = run_cli("run", "broken", "--wait", "--timeout", "150", cwd=project, api_url=prefect_server_url, timeout=180)
    assert ran.returncode == 1, (ran.stdout, ran.stderr)
    assert "exploding" in ran.stdout and "Failed" in ran.stdout
    assert "Failed" in ran.stderr and "exploding" in ran.stderr


def test_deploy_from_a_git_source(project: Path, prefect_server_url: str, worker_pool: str, tmp_path: Path) -> None:
    """With ``source: {git: ...}`` the worker clones the repository and runs the project inside it."""
    import yaml

    repo = tmp_path / "repo"  # a monorepo: the project is one folder of it
    shutil.copytree(project, repo / "shop")
    stored = tmp_path / "stored-by-the-clone"  # absolute, so the test sees what the clone's run wrote
    config_file = repo / "shop" / "prefect_assets.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["io_managers"]["default"]["base_uri"] = str(stored)
    config_file.write_text(yaml.safe_dump(config))
    git_env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for command in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "shop"]):
        subprocess.run(["git", *command], cwd=repo, env=git_env, check=True, timeout=60)

    write(project / "deployments" / "from-git.yaml", f"""\
        name: from-git
        select: "+paid_orders"
        work_pool: {worker_pool}
        source: {{git: "file://{repo}", directory: shop}}
    """)
    deployed = run_cli("deploy", "from-git", cwd=project, api_url=prefect_server_url, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    with prefect_api(prefect_server_url) as client:
        deployment = client.read_deployment_by_name("materialize-shop/from-git")
    assert deployment.pull_steps[0]["prefect.deployments.steps.git_clone"]["repository"] == f"file://{repo}"
    assert deployment.parameters["project"] == "shop"

    ran = run_cli("run", "from-git", "--wait", "--timeout", "150", cwd=project, api_url=prefect_server_url, timeout=180)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    assert (stored / "paid_orders.parquet").exists()
    assert not (project / "data").exists()  # the local folder was not what ran


def test_server_side_errors_are_one_line(project: Path, prefect_server_url: str) -> None:
    one_line_error(run_cli("run", "nighty", cwd=project, api_url=prefect_server_url), "did you mean 'nightly'")
    one_line_error(
        run_cli("run", "materialize-shop/never-deployed", cwd=project, api_url=prefect_server_url),
        "'materialize-shop/never-deployed' is not registered",
    )
    one_line_error(
        run_cli("deploy", "nightly", "--pool", "no-such-pool", cwd=project, api_url=prefect_server_url),
        "work pool 'no-such-pool' does not exist", "--create-pool",
    )
    from tests.conftest import free_port

    unreachable = f"http://127.0.0.1:{free_port()}/api"
    one_line_error(run_cli("run", "nightly", cwd=project, api_url=unreachable), "PREFECT_API_URL", unreachable)


def test_deploy_create_pool_makes_a_process_pool(project: Path, prefect_server_url: str) -> None:
    pool = f"created-{uuid.uuid4().hex[:8]}"
    deployed = run_cli("deploy", "--pool", pool, "--create-pool", cwd=project, api_url=prefect_server_url, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    with prefect_api(prefect_server_url) as client:
        assert client.read_work_pool(pool).type == "process"
        assert client.read_deployment_by_name("materialize-shop/nightly").work_pool_name == pool
