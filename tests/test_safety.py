"""Safe by default: nothing a user types destroys data, every mistake is one line.

Everything goes through the ``prefect-assets`` command in a subprocess, as a user would run it.
Bad input that must stop a run before it starts is in ``test_cli.py``'s ``BAD_INPUTS``; this
module covers ``wipe``, records that survive copying and moving a project, data deleted or
changed behind our back, exact deletes on S3, failure output and the CLI's conventions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from prefect_assets import AssetKey
from prefect_assets.io_managers import FsspecIOManager, OutputContext
from tests.conftest import EXAMPLE, REPO, run_cli
from tests.test_cli import EXAMPLE_KEYS, row, write_project

RECORDS = Path("data") / "_prefect_assets" / "records"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content, to prove nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def shop(prefect_server, tmp_path_factory) -> Path:
    """The example project, materialized once through the CLI; tests work on copies of it."""
    root = tmp_path_factory.mktemp("safety") / "shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", "__pycache__"))
    result = run_cli("materialize", cwd=root, api_url=prefect_server)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.fixture
def shop_copy(shop, tmp_path) -> Path:
    target = tmp_path / "shop"
    shutil.copytree(shop, target)
    return target


# ---------------------------------------------------------------------------------------------
# wipe


@pytest.mark.parametrize("selection", ["", " ", "orders,,prices", ",", "orders,"])
def test_wipe_with_an_empty_or_malformed_selection_deletes_nothing(shop_copy, selection):
    before = snapshot(shop_copy)
    result = run_cli("wipe", "--select", selection, "--yes", cwd=shop_copy)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: selection ")
    assert snapshot(shop_copy) == before


def test_wipe_without_a_selection_is_a_usage_error(shop_copy):
    before = snapshot(shop_copy)
    result = run_cli("wipe", "--yes", cwd=shop_copy)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: Missing option '--select' / '-s'.", "Try 'prefect-assets wipe -h' for help."]
    assert snapshot(shop_copy) == before


def test_wipe_lists_what_it_deletes_and_asks_first(shop_copy):
    before = snapshot(shop_copy)
    sizes = {key: len(next((shop_copy / "data").glob(f"{key}.*")).read_bytes()) for key in ("orders", "customers")}
    declined = run_cli("wipe", "--select", "orders, customers", cwd=shop_copy, input="n\n")
    assert declined.returncode == 1
    assert f"of 2 assets, 2 of them stored ({sum(sizes.values()):,} bytes): customers, orders" in declined.stdout
    assert "Delete them?" in declined.stdout and "nothing deleted" in declined.stderr
    assert snapshot(shop_copy) == before

    everything = run_cli("wipe", "--select", "*", cwd=shop_copy, input="\n")
    assert everything.returncode == 1  # the default answer is no
    assert f"all {len(EXAMPLE_KEYS)} assets" in everything.stdout
    assert snapshot(shop_copy) == before

    accepted = run_cli("wipe", "--select", "orders", cwd=shop_copy, input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert f"wiped 1 asset(s), {sizes['orders']:,} bytes" in accepted.stdout
    assert not list((shop_copy / "data").glob("orders.*")) and not (shop_copy / RECORDS / "orders.json").exists()
    assert (shop_copy / "data" / "customers.parquet").exists()


# ---------------------------------------------------------------------------------------------
# Records are portable


def test_records_name_data_relative_to_the_io_manager(shop):
    for key in EXAMPLE_KEYS:
        record = json.loads((shop / RECORDS / f"{key}.json").read_text())
        stored = next((shop / "data").glob(f"{key}.*"))
        assert record["path"] == str(stored.relative_to(shop / "data"))
        assert "uri" not in record and str(shop) not in json.dumps(record)


def test_a_copied_and_a_moved_project_read_and_write_their_own_data(shop, tmp_path, prefect_server):
    original = snapshot(shop)
    copied = tmp_path / "copied"
    shutil.copytree(shop, copied)
    # The copy's upstream file differs from the original's: a run that read the original's
    # files would compute the original's numbers.
    orders = copied / "data" / "paid_orders.parquet"
    import pyarrow.parquet as pq

    table = pq.read_table(orders).slice(0, 10)
    pq.write_table(table, orders)
    record_path = copied / RECORDS / "paid_orders.json"
    record = json.loads(record_path.read_text())
    from prefect_assets.assets.versions import content_version

    record.update(bytes=orders.stat().st_size, data_version=content_version(orders.read_bytes()), rows=10)
    record_path.write_text(json.dumps(record))

    status = run_cli("status", cwd=copied)
    assert row(status.stdout, "paid_orders").split()[1] == "fresh", status.stdout
    assert "stale (upstream 'paid_orders' has new data)" in row(status.stdout, "orders_by_customer")
    rerun = run_cli("materialize", "--stale", cwd=copied, api_url=prefect_server)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "materialized" in row(rerun.stdout, "orders_by_customer")
    assert pq.read_table(copied / "data" / "orders_by_customer.parquet").num_rows <= 10  # computed from the copy
    assert snapshot(shop) == original  # the original project was neither read for writing nor changed

    moved = tmp_path / "moved"
    shutil.move(str(copied), moved)
    status = run_cli("status", cwd=moved)
    assert all(row(status.stdout, key).split()[1] == "fresh" for key in EXAMPLE_KEYS), status.stdout
    downstream = run_cli("materialize", "--select", "reports/kpis", cwd=moved, api_url=prefect_server)
    assert downstream.returncode == 0, downstream.stdout + downstream.stderr  # loads its upstream from the new place
    assert "materialized" in row(downstream.stdout, "reports/kpis")


def test_records_written_with_an_absolute_uri_still_load(shop_copy, prefect_server):
    record_path = shop_copy / RECORDS / "paid_orders.json"
    record = json.loads(record_path.read_text())
    del record["path"]
    record["uri"] = "file:///somewhere/else/paid_orders.parquet"  # how records were written before
    record_path.write_text(json.dumps(record))
    assert row(run_cli("status", cwd=shop_copy).stdout, "paid_orders").split()[1] == "fresh"
    result = run_cli("materialize", "--select", "orders_by_customer", cwd=shop_copy, api_url=prefect_server)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# Data deleted or changed behind our back


def test_status_notices_deleted_and_changed_data_and_stale_repairs_it(shop_copy, prefect_server):
    (shop_copy / "data" / "customers.parquet").unlink()
    with (shop_copy / "data" / "reports" / "kpis.json").open("a") as f:
        f.write(" ")  # one more byte
    status = run_cli("status", cwd=shop_copy)
    assert "missing (data deleted)" in row(status.stdout, "customers")
    assert "stale (upstream 'customers' is missing)" in row(status.stdout, "orders_by_customer")
    assert "stale (data does not match its record: it holds 49 bytes, the record says 48)" in row(status.stdout, "reports/kpis")
    assert row(status.stdout, "prices").split()[1] == "fresh"

    repaired = run_cli("materialize", "--stale", cwd=shop_copy, api_url=prefect_server)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "materialized" in row(repaired.stdout, "customers") and "materialized" in row(repaired.stdout, "reports/kpis")
    assert "fresh" in row(repaired.stdout, "prices")
    after = run_cli("status", cwd=shop_copy)
    assert all(row(after.stdout, key).split()[1] == "fresh" for key in EXAMPLE_KEYS), after.stdout
    nothing = run_cli("materialize", "--stale", cwd=shop_copy, api_url=prefect_server)
    assert nothing.returncode == 0, nothing.stderr
    assert "all 9 selected assets are fresh: nothing to run, no flow run created" in nothing.stdout


def test_status_notices_same_size_changes_by_file_identity_and_verify_rehashes_all(shop_copy):
    kpis = shop_copy / "data" / "reports" / "kpis.json"
    kpis.write_bytes(kpis.read_bytes().replace(b"1", b"2", 1))  # same size, other bytes: a new mtime
    customers = shop_copy / "data" / "customers.parquet"
    shutil.copy(customers, shop_copy / "customers.copy")
    os.replace(shop_copy / "customers.copy", customers)  # a new file with the same bytes, as a restore does
    for args in (["status"], ["status", "--verify"]):
        status = run_cli(*args, cwd=shop_copy)
        assert status.returncode == 0, status.stderr
        assert "stale (data does not match its record: its content hashes to" in row(status.stdout, "reports/kpis")
        assert row(status.stdout, "customers").split()[1] == "fresh"  # another file, the recorded content


def test_an_upstream_outside_the_selection_whose_data_was_deleted_fails_the_asset_saying_what_to_run(
    shop_copy, prefect_server
):
    (shop_copy / "data" / "orders.parquet").unlink()
    result = run_cli("materialize", "--select", "paid_orders", cwd=shop_copy, api_url=prefect_server)
    assert result.returncode == 1
    assert "failed" in row(result.stdout, "paid_orders")
    table = " ".join(re.sub(r"[│┃]", " ", result.stdout).split())  # the detail cell wraps
    assert "asset 'orders' was materialized to" in table
    assert "which no longer exists; materialize it again: prefect-assets materialize --select +orders" in table


# ---------------------------------------------------------------------------------------------
# Deletes name exact paths


def test_s3_deletes_never_expand_globs(s3):
    base = f"s3://{s3.bucket}/run[1]"  # a base_uri that fsspec would read as a glob
    io = FsspecIOManager(base, storage_options=s3.storage_options)
    io.handle_output(OutputContext(AssetKey.parse("orders"), partition_key="2026-01-05"), {"day": 5})
    io.handle_output(OutputContext(AssetKey.parse("orders"), partition_key="2026-01-06"), {"day": 6})
    io.handle_output(OutputContext(AssetKey.parse("orders")), {"all": True})
    # What the old glob delete matched instead: run[1] reads as "run1".
    decoy = FsspecIOManager(f"s3://{s3.bucket}/run1", storage_options=s3.storage_options)
    decoy.handle_output(OutputContext(AssetKey.parse("orders"), partition_key="2026-01-05"), {"other": "project"})
    # Storing a partition in another format removes its other-format files, by exact name only.
    io.handle_output(OutputContext(AssetKey.parse("orders"), partition_key="2026-01-05"), b"raw now")
    io.delete(AssetKey.parse("orders"))  # the unpartitioned value only
    fs = s3.filesystem()
    assert sorted(p.removeprefix(f"{s3.bucket}/") for p in fs.find(f"{s3.bucket}/")) == [
        "run1/orders/2026-01-05.json", "run[1]/orders/2026-01-05.bin", "run[1]/orders/2026-01-06.json",
    ]


@pytest.mark.parametrize("partition", ["*", "2026-0[1-9]-05", "?", "../orders", "a/b", "x\x00y"])
def test_no_partition_key_reaches_storage_that_could_name_other_files(s3, partition):
    io = FsspecIOManager(f"s3://{s3.bucket}/lake", storage_options=s3.storage_options)
    io.handle_output(OutputContext(AssetKey.parse("orders"), partition_key="2026-01-05"), {"day": 5})
    from prefect_assets.errors import AssetsError

    with pytest.raises(AssetsError, match="cannot be stored"):
        io.handle_output(OutputContext(AssetKey.parse("orders"), partition_key=partition), b"x")
    with pytest.raises(AssetsError, match="cannot be stored"):
        io.delete(AssetKey.parse("orders"), partition)
    assert s3.filesystem().find(f"{s3.bucket}/lake/orders") == [f"{s3.bucket}/lake/orders/2026-01-05.json"]


# ---------------------------------------------------------------------------------------------
# Failure output


FLAKY = """
from pathlib import Path
import pyarrow as pa
from prefect_assets import asset

@asset(retries=2)
def flaky() -> list:
    attempts = Path(__file__).parent / "attempts"
    attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
    if len(attempts.read_text()) < 2:
        raise ConnectionError("first try fails")
    return [1]

@asset(retries=2)
def broken() -> list:
    tries = Path(__file__).parent / "broken_tries"
    tries.write_text(tries.read_text() + "x" if tries.exists() else "x")
    raise ValueError("kaboom: the source is empty")

@asset
def forgot_return() -> pa.Table:
    table = pa.table({"a": [1]})
"""


@pytest.fixture(scope="module")
def failures(prefect_server, tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("failures") / "p", "modules: [flaky]\n", {"flaky.py": FLAKY})
    return root, run_cli("materialize", cwd=root, api_url=prefect_server)


def test_a_failed_asset_is_one_line_with_type_message_and_attempts(failures):
    root, result = failures
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr  # the traceback went to Prefect's task run logs
    assert "ERROR" not in result.stderr
    header = next(line for line in result.stdout.splitlines() if "asset" in line and "status" in line)
    assert "attempts" in header
    columns = re.split(r"\s{2,}", header.strip())
    broken = dict(zip(columns, re.split(r"\s{2,}", row(result.stdout, "broken").strip())))
    assert broken["status"] == "failed" and broken["attempts"] == "3"
    assert broken["detail"].startswith("ValueError: kaboom: the source is empty")
    flaky = dict(zip(columns, re.split(r"\s{2,}", row(result.stdout, "flaky").strip())))
    assert flaky["status"] == "materialized" and flaky["attempts"] == "2"
    assert (root / "attempts").read_text() == "xx"
    assert (root / "broken_tries").read_text() == "xxx"
    # The traceback is in the task run's logs on the Prefect server.
    assert any("Traceback" in text and "ValueError: kaboom" in text for text in server_logs(result.stdout))


def server_logs(stdout: str) -> list[str]:
    """The messages the Prefect server holds for the flow run named in ``stdout``."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    flow_run_id = uuid.UUID(re.search(r"flow run ([0-9a-f-]{36}):", stdout)[1])
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def test_none_returned_against_a_table_annotation_fails_the_asset_and_stores_nothing(failures):
    root, result = failures
    line = row(result.stdout, "forgot_return")
    assert "failed" in line and "returned None, but its annotation promises Table" in line
    assert not list((root / "data").glob("forgot_return.*"))
    assert not (root / RECORDS / "forgot_return.json").exists()


def test_verbose_shows_the_traceback(prefect_server, tmp_path):
    root = write_project(tmp_path / "p", "modules: [flaky]\n", {"flaky.py": FLAKY})
    result = run_cli("materialize", "--select", "broken", "--verbose", cwd=root, api_url=prefect_server)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: kaboom" in result.stderr


# ---------------------------------------------------------------------------------------------
# CLI conventions


def test_version_help_and_bare_command():
    from importlib.metadata import version

    assert run_cli("--version").stdout.strip() == f"prefect-assets {version('prefect-assets')}"
    bare = run_cli()
    assert bare.returncode == 0 and bare.stdout.startswith("Usage: prefect-assets")
    for command in ["materialize", "wipe", "status", "serve", "run", "deploy", "list", "graph", "init"]:
        short, long = run_cli(command, "-h"), run_cli(command, "--help")
        assert short.returncode == 0 and short.stdout == long.stdout
        assert "<bool>" not in short.stdout
        assert "╭" not in short.stdout  # plain help, no boxes


def test_usage_errors_are_one_line_and_where_to_get_help(tmp_path):
    result = run_cli("materialize", "--stael", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: No such option: --stael (Possible options: --help, --select, --stale)",
        "Try 'prefect-assets materialize -h' for help.",
    ]
    assert result.stdout == ""


def test_every_option_of_every_command_is_documented():
    import typer.main

    from prefect_assets.cli import app

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert command.help, name
        for param in command.params:
            assert getattr(param, "help", None) or param.param_type_name == "argument", f"{name} {param.name}"
    readme = (REPO / "README.md").read_text()
    assert "serve       [NAME ...] [--limit N]" in readme


# ---------------------------------------------------------------------------------------------
# The README works as written


def test_ci_runs_the_readme_test_command_character_for_character():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(python3 -m venv .*?)\n```", readme)
    assert len(blocks) == 2, blocks  # the quick start and the test command
    quick_start, test_command = blocks
    assert "python -m pip install -q --upgrade pip && pip install -e" in quick_start
    assert "python -m pip install -q --upgrade pip && pip install -e" in test_command
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_no_work_log_labels_in_docs_or_code():
    pattern = re.compile(r"\bsessions? \d|\bstop \d+\b|\(issue \d+\)", re.IGNORECASE)
    places = [REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md"),
              *(REPO / "prefect_assets").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    found = [f"{p.relative_to(REPO)}:{n}" for p in places for n, line in enumerate(p.read_text().splitlines(), 1)
             if pattern.search(line)]
    assert found == []
