"""End to end in-process: assets run as real Prefect flow runs against the session's test server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from pydantic import BaseModel

from prefect_assets import AssetContext, AssetKey, AssetsError, Definitions, Output, asset, materialize
from prefect_assets.assets.versions import graph_status
from prefect_assets.config import DefaultsConfig, PROJECT_FILE
from prefect_assets.io_managers import FsspecIOManager
from tests.conftest import EXAMPLE

pytestmark = pytest.mark.prefect


def copy_example(folder: Path) -> Path:
    target = folder / "shop"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return target


def local_defs(folder: Path, assets: list, **options) -> Definitions:
    return Definitions(assets, io_managers={"default": FsspecIOManager(str(folder / "data"))}, **options)


def statuses(result) -> dict[str, str]:
    return {str(row.key): row.status for row in result.assets}


def read_from_prefect(flow_run_id: str, expected_task_runs: int):
    """The flow run, its task runs and its artifacts as the Prefect API reports them.

    Task runs reach the server through Prefect's event pipeline, a moment after the flow run
    ends, so wait (briefly) until the expected number has arrived.
    """
    run_id = UUID(flow_run_id)
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        while True:
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            settled = all(t.state is not None and t.state.is_final() for t in task_runs)
            if (len(task_runs) >= expected_task_runs and settled) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        flow_run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return flow_run, task_runs, artifacts


# ---------------------------------------------------------------------------------------------
# The example project, materialized once for the tests below.


@pytest.fixture(scope="module")
def example_run(prefect_server, tmp_path_factory):
    root = copy_example(tmp_path_factory.mktemp("example"))
    defs = Definitions.load(root)
    return root, defs, materialize(defs)


def test_example_materializes_every_asset(example_run):
    _, defs, result = example_run
    assert statuses(result) == {str(k): "materialized" for k in defs.graph.keys}
    assert result.state == "Completed" and result.success
    assert [row.key for row in result.assets] == defs.graph.keys  # dependency order


def test_example_files_and_records(example_run):
    root, defs, result = example_run
    records = defs.read_records(defs.graph.keys)
    for key in defs.graph.keys:
        rec = records[key]
        files = list((root / "data").joinpath(*key.parts[:-1]).glob(f"{key.name}.*"))
        assert len(files) == 1, files
        data = files[0].read_bytes()
        assert rec.path == str(files[0].relative_to(root / "data"))  # relative to base_uri
        assert rec.data_version == hashlib.sha256(data).hexdigest()[:16]
        assert rec.bytes == len(data)
        assert rec.code_version == defs.definition(key).code_version
        assert rec.input_versions == {str(up): records[up].data_version for up in defs.graph.upstream_of(key)}
        assert rec.run_id == result.flow_run_id
        assert (root / "data" / "_prefect_assets" / "records").joinpath(*key.parts[:-1], f"{key.name}.json").is_file()
        assert result[key].record == rec
    assert records[AssetKey.parse("orders")].rows == 5000
    kpis = records[AssetKey.parse("reports/kpis")]
    assert kpis.format == "json" and "revenue_per_day" in kpis.metadata  # Output(metadata=...)
    assert json.loads((root / "data" / "reports" / "kpis.json").read_text())["days"] == 90


def test_example_run_is_recorded_in_prefect(example_run):
    _, defs, result = example_run
    flow_run, task_runs, artifacts = read_from_prefect(result.flow_run_id, len(defs.graph))
    assert flow_run.state.type == StateType.COMPLETED
    assert sorted(t.name for t in task_runs) == sorted(str(k) for k in defs.graph.keys)
    assert {t.state.type for t in task_runs} == {StateType.COMPLETED}
    tables = [a for a in artifacts if a.type == "table"]
    assert len(tables) == 1
    rows = tables[0].data if isinstance(tables[0].data, list) else json.loads(tables[0].data)
    assert {(row["asset"], row["status"]) for row in rows} == {(str(k), "materialized") for k in defs.graph.keys}


# ---------------------------------------------------------------------------------------------
# Failure: downstream skipped, independent branches complete, the flow run ends Failed.


@pytest.fixture(scope="module")
def failing_run(prefect_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("failing")

    @asset
    def source():
        return [1, 2, 3]

    @asset
    def boom(source):
        raise ValueError("kaboom")

    @asset
    def after(boom):
        return boom

    @asset
    def report(after):
        return after

    @asset(key_prefix="branch")
    def side(source):
        return sum(source)

    defs = local_defs(folder, [source, boom, after, report, side])
    return folder, defs, materialize(defs)


def test_failed_asset_skips_its_downstream_and_not_other_branches(failing_run):
    folder, defs, result = failing_run
    assert statuses(result) == {
        "source": "materialized", "boom": "failed", "after": "skipped", "report": "skipped",
        "branch/side": "materialized",
    }
    assert result["boom"].reason == "ValueError: kaboom"
    assert result["after"].reason == "upstream 'boom' failed"
    assert result["report"].reason == "upstream 'after' skipped"
    assert result.state == "Failed" and not result.success
    assert [r.key for r in result.failed] == [AssetKey.parse("boom")]
    stored = {p.stem for p in (folder / "data").glob("*.json")}
    assert stored == {"source"}  # nothing for the failed or skipped assets
    assert (folder / "data" / "branch" / "side.json").read_text() == "6"


def test_failed_run_is_failed_in_prefect_with_one_task_run_per_executed_asset(failing_run):
    _, _, result = failing_run
    flow_run, task_runs, artifacts = read_from_prefect(result.flow_run_id, 3)
    assert flow_run.state.type == StateType.FAILED
    assert "boom" in flow_run.state.message
    # skipped assets never become task runs; the rest are named after their keys
    assert {t.name: t.state.type for t in task_runs} == {
        "source": StateType.COMPLETED, "boom": StateType.FAILED, "branch/side": StateType.COMPLETED,
    }
    assert len([a for a in artifacts if a.type == "table"]) == 1


# ---------------------------------------------------------------------------------------------
# Retries


def attempt(counter: Path, failures: int) -> int:
    """Fail the first ``failures`` calls; the count survives in a file."""
    attempts = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempts))
    if attempts <= failures:
        raise RuntimeError(f"attempt {attempts} fails")
    return attempts


def test_retries_recover_a_flaky_asset(prefect_server, tmp_path):
    @asset(retries=2, retry_delay_seconds=0)
    def own_retries():
        return attempt(tmp_path / "own", failures=2)

    @asset
    def project_retries():  # no retries of its own: the project default (1) applies
        return attempt(tmp_path / "default", failures=1)

    @asset(retries=0)
    def no_retries():  # its own 0 wins over the project default
        return attempt(tmp_path / "none", failures=1)

    defs = local_defs(tmp_path, [own_retries, project_retries, no_retries],
                      defaults=DefaultsConfig(retries=1, retry_delay_seconds=0))
    result = materialize(defs)
    assert statuses(result) == {"own_retries": "materialized", "project_retries": "materialized", "no_retries": "failed"}
    assert (tmp_path / "own").read_text() == "3"
    assert (tmp_path / "default").read_text() == "2"
    assert (tmp_path / "none").read_text() == "1"
    assert result["no_retries"].reason == "RuntimeError: attempt 1 fails"
    assert json.loads((tmp_path / "data" / "own_retries.json").read_text()) == 3


# ---------------------------------------------------------------------------------------------
# stale_only


PIPELINE = """
from prefect_assets import asset

@asset
def a():
    return 1

@asset
def b(a):
    return {b_body}

@asset
def c(b):
    return b * 10

@asset
def d():
    return "independent"
"""


def _flow_run_count() -> int:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.count_flow_runs()


def test_stale_only_runs_what_changed_and_its_downstream(prefect_server, tmp_path):
    root = tmp_path / "pipeline"
    root.mkdir()
    (root / PROJECT_FILE).write_text("name: pipeline\nmodules: [pa_flows_pipeline]\n")
    module = root / "pa_flows_pipeline.py"
    module.write_text(PIPELINE.format(b_body="a + 1"))
    assert statuses(materialize(Definitions.load(root))) == dict.fromkeys("abcd", "materialized")

    runs_before = _flow_run_count()
    again = materialize(Definitions.load(root), stale_only=True)
    assert statuses(again) == dict.fromkeys("abcd", "fresh")
    # Nothing stale: decided before any flow exists, so no flow run is created.
    assert again.flow_run_id is None and again.state is None and again.success
    assert _flow_run_count() == runs_before

    # New logic in b (a new module file, another size so no stale bytecode is used)
    module.write_text(PIPELINE.format(b_body="a + 100"))
    defs = Definitions.load(root)
    before = graph_status(defs.graph, defs.read_records(defs.graph.keys))
    assert before[AssetKey.parse("b")].cause.startswith("code version changed")
    assert before[AssetKey.parse("c")].cause == "upstream 'b' is stale"
    edited = materialize(defs, stale_only=True)
    assert statuses(edited) == {"a": "fresh", "b": "materialized", "c": "materialized", "d": "fresh"}
    assert json.loads((root / "data" / "c.json").read_text()) == 1010

    # Code that changes but computes the same bytes: b runs, c keeps its inputs and stays fresh
    module.write_text(PIPELINE.format(b_body="(a + 100) * 1"))
    same_data = materialize(Definitions.load(root), stale_only=True)
    assert statuses(same_data) == {"a": "fresh", "b": "materialized", "c": "fresh", "d": "fresh"}


# ---------------------------------------------------------------------------------------------
# Selections


def test_selection_runs_only_what_is_selected(prefect_server, project):
    defs = Definitions.load(project)
    data = project / "data"

    missing = materialize(defs, "paid_orders")
    assert statuses(missing) == {"paid_orders": "failed"}
    assert missing.state == "Failed"
    reason = missing["paid_orders"].reason
    assert "'orders' was never materialized" in reason or "'prices' was never materialized" in reason
    assert "--select +paid_orders" in reason
    assert not data.exists() or not any(data.rglob("*.parquet"))

    raw = materialize(defs, "group:raw")
    assert statuses(raw) == dict.fromkeys(["customers", "orders", "prices"], "materialized")
    assert sorted(p.name for p in data.glob("*.*")) == ["customers.parquet", "orders.parquet", "prices.json"]

    # upstream outside the selection is loaded from storage, not run again
    clean = materialize(defs, "paid_orders")
    assert statuses(clean) == {"paid_orders": "materialized"}
    records = defs.read_records(defs.graph.keys)
    assert clean["paid_orders"].record.input_versions == {
        "orders": records[AssetKey.parse("orders")].data_version,
        "prices": records[AssetKey.parse("prices")].data_version,
    }
    assert records[AssetKey.parse("orders")].run_id == raw.flow_run_id


def test_materialize_works_under_a_running_event_loop(prefect_server, project):
    """A notebook (or any async application) calls materialize() with an event loop running."""

    async def notebook_cell():
        return materialize(Definitions.load(project), "prices")

    result = asyncio.run(notebook_cell())
    assert statuses(result) == {"prices": "materialized"} and result.state == "Completed"
    flow_run, task_runs, artifacts = read_from_prefect(result.flow_run_id, 1)
    assert flow_run.state.type == StateType.COMPLETED and [t.name for t in task_runs] == ["prices"]
    assert [a.type for a in artifacts] == ["table"]


def test_to_flow_returns_the_prefect_flow(prefect_server, project):
    defs = Definitions.load(project)
    with pytest.raises(AssetsError, match="no asset 'ordrs'"):
        defs.to_flow("ordrs")  # checked before any run
    flow = defs.to_flow("+prices")
    assert isinstance(flow, Flow)
    state = flow(return_state=True)
    assert state.is_completed()
    assert (project / "data" / "prices.json").is_file()
    assert not (project / "data" / "orders.parquet").exists()


def test_run_options_are_checked_the_same_way_everywhere(project):
    """materialize() and to_flow() take the run options of RunOptions: an unknown one, or a
    bad value, is one line naming it, before any flow run (no server needed)."""
    defs = Definitions.load(project)
    with pytest.raises(AssetsError, match=r"^materialize\(\) stale: unknown \(did you mean 'stale_only'\?\)"):
        materialize(defs, stale=True)
    with pytest.raises(AssetsError, match=r"^to_flow\(\) runner: unknown runner 'thred' \(did you mean 'thread'\?\)"):
        defs.to_flow(runner="thred")
    with pytest.raises(AssetsError, match=r"^materialize\(\) max_workers: Input should be greater than or equal to 1"):
        materialize(defs, max_workers=0)
    assert not (project / "data").exists()


# ---------------------------------------------------------------------------------------------
# What an asset sees at run time


class Limit(BaseModel):
    top: int = 2


def test_context_metadata_config_deps_and_unstored_assets(prefect_server, tmp_path):
    side_file = tmp_path / "export.txt"

    @asset
    def numbers():
        return [3, 1, 2]

    @asset(io_manager=None)
    def export(context: AssetContext):
        side_file.write_text(context.run_id)  # writes elsewhere itself, stores nothing

    @asset(deps=[export], metadata={"owner": "me"}, config=Limit)
    def summary(context: AssetContext, config: Limit, numbers):
        context.add_metadata(seen=len(numbers))
        top = sorted(numbers, reverse=True)[: config.top]
        return Output({"key": str(context.key), "export": side_file.read_text(), "top": top}, metadata={"kind": "s"})

    defs = local_defs(tmp_path, [numbers, export, summary])
    with pytest.raises(AssetsError, match="summary.*top"):
        materialize(defs, config={"summary": {"top": "many"}})
    assert not side_file.exists() and not (tmp_path / "data").exists()  # refused before running anything

    result = materialize(defs, config={"summary": {"top": 1}})
    assert result.success
    stored = json.loads((tmp_path / "data" / "summary.json").read_text())
    # export ran before summary (deps=) and was not loaded; context and config were injected
    assert stored == {"key": "summary", "export": result.flow_run_id, "top": [3]}
    rec = result["summary"].record
    assert rec.metadata == {"owner": "me", "seen": 3, "kind": "s"}
    assert set(rec.input_versions) == {"numbers", "export"}
    assert result["export"].record.path is None
    assert not list((tmp_path / "data").glob("export.*"))
