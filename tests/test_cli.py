"""The ``prefect-assets`` command, run in subprocesses as a user would run it."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from prefect_assets.config import PROJECT_FILE
from tests.conftest import EXAMPLE, free_port, run_cli

EXAMPLE_KEYS = [
    "customers", "orders", "prices", "paid_orders", "orders_by_customer", "reports/daily_revenue",
    "reports/kpis", "reports/revenue_by_country", "reports/top_customers",
]
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def row(output: str, key: str) -> str:
    """The table line whose first cell is ``key``."""
    lines = [line for line in output.splitlines() if re.match(rf"^\W*{re.escape(key)}\s", line.strip(" │┃"))]
    assert len(lines) == 1, f"{key!r} in:\n{output}"
    return lines[0]


def write_project(folder: Path, config: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROJECT_FILE).write_text(textwrap.dedent(config))
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source))
    return folder


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


# ---------------------------------------------------------------------------------------------
# Commands that read the project only


def test_list(project):
    result = run_cli("list", cwd=project)
    assert result.returncode == 0, result.stderr
    for key in EXAMPLE_KEYS:
        assert row(result.stdout, key).split()[-1] == "-"  # never materialized
    assert row(result.stdout, "paid_orders").split()[:4] == ["paid_orders", "clean", "orders,", "prices"]
    clean = run_cli("list", "--select", "group:clean", cwd=project)
    assert "orders_by_customer" in clean.stdout and "customers " not in clean.stdout


def test_graph_formats(project, tmp_path):
    text = run_cli("graph", "--project", str(project), cwd=tmp_path)  # --project, from elsewhere
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "9 assets"
    orders_line = next(i for i, line in enumerate(lines) if "── orders raw" in line)
    assert "paid_orders clean" in lines[orders_line + 1]  # downstream nested under upstream
    assert lines[orders_line + 1].index("paid_orders") > lines[orders_line].index("orders")

    mermaid = run_cli("graph", "--format", "mermaid", "--select", "+paid_orders", cwd=project)
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.splitlines()[0] == "graph LR"
    assert "subgraph n_raw[raw]" in mermaid.stdout
    assert "n_orders --> n_paid_orders" in mermaid.stdout and "n_prices --> n_paid_orders" in mermaid.stdout
    assert "customers" not in mermaid.stdout  # only the selection

    dot = run_cli("graph", "-f", "dot", cwd=project)
    assert dot.returncode == 0, dot.stderr
    assert dot.stdout.startswith("digraph assets {") and dot.stdout.rstrip().endswith("}")
    assert 'n_reports__kpis [label="reports/kpis"];' in dot.stdout
    assert "n_reports__daily_revenue -> n_reports__kpis;" in dot.stdout


def test_status_before_anything_ran(project):
    result = run_cli("status", "--select", "group:raw", cwd=project)
    assert result.returncode == 0, result.stderr
    for key in ["customers", "orders", "prices"]:
        assert "missing (never materialized)" in row(result.stdout, key)
    assert "paid_orders" not in result.stdout


# ---------------------------------------------------------------------------------------------
# materialize, then look at the result


@pytest.fixture(scope="module")
def materialized(prefect_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "shop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return root, run_cli("materialize", cwd=root, api_url=prefect_server)


def test_materialize_prints_a_summary_and_exits_0(materialized):
    root, result = materialized
    assert result.returncode == 0, result.stderr
    assert "materialize summary" in result.stdout
    for key in EXAMPLE_KEYS:
        assert "materialized" in row(result.stdout, key)
    assert "5,000" in row(result.stdout, "orders")
    assert re.search(r"flow run [0-9a-f-]{36}: Completed", result.stdout)
    assert "Traceback" not in result.stderr
    assert (root / "data" / "reports" / "kpis.json").is_file()


def test_list_and_status_after_materialize(materialized):
    root, _ = materialized
    listed = run_cli("list", cwd=root)
    for key in EXAMPLE_KEYS:
        assert TIMESTAMP.search(row(listed.stdout, key))
    status = run_cli("status", cwd=root)
    assert status.returncode == 0, status.stderr
    for key in EXAMPLE_KEYS:
        assert row(status.stdout, key).split()[1] == "fresh"
    assert "5,000" in row(status.stdout, "orders")


def test_wipe_removes_data_and_records(materialized, tmp_path):
    root = tmp_path / "shop"
    shutil.copytree(materialized[0], root)
    wiped = run_cli("wipe", "--select", "orders", "--yes", cwd=root)
    assert wiped.returncode == 0, wiped.stderr
    assert "wiped 1 asset(s)" in wiped.stdout
    assert not (root / "data" / "orders.parquet").exists()
    assert not (root / "data" / "_prefect_assets" / "records" / "orders.json").exists()
    assert (root / "data" / "customers.parquet").exists()  # only the selection
    status = run_cli("status", cwd=root)
    assert "missing (never materialized)" in row(status.stdout, "orders")
    assert "stale (upstream 'orders' is missing)" in row(status.stdout, "paid_orders")
    assert row(status.stdout, "customers").split()[1] == "fresh"


FAILING = """
from prefect_assets import asset

@asset
def source():
    return [1, 2]

@asset
def boom(source):
    raise ValueError("kaboom")

@asset
def after(boom):
    return boom

@asset
def side(source):
    return len(source)
"""


def test_failed_asset_exits_1_and_prints_the_resume_command(prefect_server, tmp_path):
    root = write_project(tmp_path / "p", "modules: [failing]\n", {"failing.py": FAILING})
    result = run_cli("materialize", cwd=root, api_url=prefect_server)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in row(result.stdout, "boom") and "ValueError: kaboom" in row(result.stdout, "boom")
    assert "skipped" in row(result.stdout, "after") and "upstream 'boom' failed" in row(result.stdout, "after")
    assert "materialized" in row(result.stdout, "side")
    assert re.search(r"flow run [0-9a-f-]{36}: Failed", result.stdout)
    assert "prefect-assets materialize --select 'boom+'" in result.stderr


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2, one line naming the culprit, no traceback, nothing written

ASSET_ORDERS = """
from prefect_assets import asset

@asset
def orders():
    return [1]
"""

# Records the run in a file beside it: a bad partition must be refused before the function runs.
PARTITIONED = """
from pathlib import Path
from prefect_assets import asset

@asset(partitions=["2026-01-05"])
def orders():
    (Path(__file__).parent / "ran").write_text("the asset ran")
    return [1]
"""

BAD_INPUTS = {
    "cycle": ("modules: [pipeline]\n", {"pipeline.py": """
        from prefect_assets import asset

        @asset
        def a(c):
            return c

        @asset
        def b(a):
            return a

        @asset
        def c(b):
            return b
    """}, [], ["cycle in the asset graph", "a -> b -> c -> a"]),
    "unknown input": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS + textwrap.dedent("""
        @asset
        def total(ordrs):
            return ordrs
    """)}, [], ["asset 'total'", "parameter 'ordrs'", "did you mean 'orders'"]),
    "duplicate key": ("modules: [one, two]\n", {"one.py": ASSET_ORDERS, "two.py": ASSET_ORDERS},
                      [], ["duplicate asset key 'orders'", "one.py:4", "two.py:4"]),
    "bad selection": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS},
                      ["--select", "ordrs, group:raw"], ["no asset 'ordrs' (did you mean 'orders'?)", "no group 'raw'"]),
    "selection quoting brackets": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS},
                                   ["--select", "group:[raw]"], ["no group '[raw]'"]),
    "unknown config key": ("modle: [pipeline]\n", {"pipeline.py": ASSET_ORDERS},
                           [], [PROJECT_FILE, "unknown key 'modle' (did you mean 'modules'?)"]),
    "unset variable": ("modules: [pipeline]\nio_managers:\n  default: {base_uri: '${PA_CLI_UNSET_VAR}/data'}\n",
                       {"pipeline.py": ASSET_ORDERS}, [],
                       [PROJECT_FILE, "io_managers.default.base_uri", "PA_CLI_UNSET_VAR is not set"]),
    # A given selection is never "everything" by accident.
    "empty selection": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS}, ["--select", ""], ["selection '' is empty"]),
    "blank selection": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS}, ["--select", " "], ["selection ' ' is empty"]),
    "empty selection term": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS}, ["--select", "orders,,orders"],
                             ["selection 'orders,,orders' has an empty term"]),
    "trailing comma": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS}, ["--select", "orders,"],
                       ["selection 'orders,' has an empty term"]),
    "empty project file": ("", {"pipeline.py": ASSET_ORDERS}, [], [PROJECT_FILE, "is empty", "modules: [my_assets]"]),
    "project file not a mapping": ("just text\n", {"pipeline.py": ASSET_ORDERS}, [],
                                   [PROJECT_FILE, "top level is a str, not a mapping"]),
    "unknown format": ("modules: [pipeline]\n", {"pipeline.py": """
        from prefect_assets import asset

        @asset(format="parket")
        def orders():
            return [1]
    """}, [], ["asset 'orders'", "format='parket' is not a format (did you mean 'parquet'?)"]),
    "unwritable base_uri": ("modules: [pipeline]\nio_managers:\n  default: {base_uri: ./blocker/data}\n",
                            {"pipeline.py": ASSET_ORDERS, "blocker": "a file, not a folder"}, [],
                            ["io_managers.default", "is not writable", "blocker is a file, not a folder"]),
    "unknown config field": ("modules: [pipeline]\n", {"pipeline.py": """
        from pydantic import BaseModel
        from prefect_assets import asset

        class Limits(BaseModel):
            limit: int = 5

        @asset(config=Limits)
        def orders(config):
            return [config.limit]
    """}, ["--config", '{"orders": {"limt": 1}}'], ["asset 'orders' config: unknown field(s) 'limt' (did you mean 'limit'?)"]),
    "partition for unpartitioned assets": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS},
                                           ["--partition", "2026-01-05"], ["no asset in the selection is partitioned"]),
    "partition with a glob": ("modules: [pipeline]\n", {"pipeline.py": PARTITIONED}, ["--partition", "2026-*"],
                              ["partition key '2026-*' cannot be stored: it contains '*'"]),
    "partition climbing out": ("modules: [pipeline]\n", {"pipeline.py": PARTITIONED}, ["--partition", "../x"],
                               ["partition key '../x' cannot be stored: it contains '..'"]),
    "partition with a slash": ("modules: [pipeline]\n", {"pipeline.py": PARTITIONED}, ["--partition", "eu/2026"],
                               ["partition key 'eu/2026' cannot be stored: it contains '/'"]),
    "unreachable Prefect API": ("modules: [pipeline]\n", {"pipeline.py": ASSET_ORDERS}, [],
                                ["cannot reach the Prefect server at http://127.0.0.1:", "prefect server start",
                                 "unset PREFECT_API_URL"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, tmp_path, monkeypatch, prefect_server):
    monkeypatch.delenv("PA_CLI_UNSET_VAR", raising=False)
    config, files, args, expected = BAD_INPUTS[case]
    root = write_project(tmp_path / "p", config, files)
    before = files_under(root)
    api_url = f"http://127.0.0.1:{free_port()}/api" if case == "unreachable Prefect API" else prefect_server
    result = run_cli("materialize", *args, cwd=root, api_url=api_url)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert files_under(root) == before  # no data directory, no records
