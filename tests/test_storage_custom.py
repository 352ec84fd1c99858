"""Storage configured from prefect_assets.yaml: the custom IO manager of docs/storage.md, format
options, and the errors a user sees for storage mistakes."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from prefect_assets import Definitions
from prefect_assets.errors import AssetsError
from tests.conftest import REPO, run_cli

DOCS = REPO / "docs" / "storage.md"


def docs_example(name: str) -> str:
    """The code block that follows ``<!-- example: NAME -->`` in docs/storage.md."""
    text = DOCS.read_text()
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, f"no example {name} in {DOCS}"
    return match.group(1)


def configure(project: Path, **io_managers: dict) -> None:
    config_file = project / "prefect_assets.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["io_managers"].update(io_managers)
    config_file.write_text(yaml.safe_dump(config))


def use_io_manager(project: Path, module: str, names: list[str], io_manager: str) -> None:
    path = project / "shop_assets" / module
    source = path.read_text()
    for name in names:
        source, count = re.subn(rf"@asset\((.*)\)\ndef {name}\(", rf'@asset(\1, io_manager="{io_manager}")\ndef {name}(',
                                source)
        assert count == 1, name
    path.write_text(source)


def test_sqlite_io_manager_from_the_docs_runs_the_example(project, prefect_server):
    (project / "sqlite_io.py").write_text(docs_example("sqlite_io.py"))
    configure(project, warehouse={"type": "sqlite_io:SQLiteIOManager", "base_uri": "./warehouse.db",
                                  "options": {"timeout": 60}})
    use_io_manager(project, "reports.py", ["daily_revenue", "revenue_by_country"], "warehouse")

    run = run_cli("materialize", cwd=project, api_url=prefect_server)
    assert run.returncode == 0, run.stdout + run.stderr

    with sqlite3.connect(project / "warehouse.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"reports__daily_revenue", "reports__revenue_by_country"}
        days, revenue = db.execute('SELECT COUNT(*), SUM(revenue_sum) FROM "reports__daily_revenue"').fetchone()
        countries = db.execute('SELECT country FROM "reports__revenue_by_country" ORDER BY country').fetchall()
    assert [c for (c,) in countries] == ["DE", "FR", "NL", "PL", "SE"]
    # kpis (local JSON) was computed from the table loaded back out of SQLite.
    kpis = json.loads((project / "data" / "reports" / "kpis.json").read_text())
    assert kpis["days"] == days == 90 and kpis["revenue"] == pytest.approx(revenue, abs=0.01)
    assert not (project / "data" / "reports" / "daily_revenue.parquet").exists()
    # Its records are in the default store, and it is tracked like any other asset.
    record = json.loads((project / "data" / "_prefect_assets" / "records" / "reports" / "daily_revenue.json").read_text())
    assert record["format"] == "sqlite" and record["rows"] == 90
    assert record["path"] == "reports__daily_revenue"
    status = run_cli("status", cwd=project)
    assert status.returncode == 0 and "stale" not in status.stdout and "missing" not in status.stdout, status.stdout

    wipe = run_cli("wipe", "--select", "reports/revenue_by_country", "--yes", cwd=project)
    assert wipe.returncode == 0, wipe.stderr
    with sqlite3.connect(project / "warehouse.db") as db:
        assert {row[0] for row in db.execute("SELECT name FROM sqlite_master")} == {"reports__daily_revenue"}
    status = run_cli("status", "--select", "reports/revenue_by_country", cwd=project)
    assert "missing" in status.stdout


def test_format_options_from_config_reach_the_io_manager(project):
    configure(project, default={"base_uri": "./data", "options": {"parquet": {"compression": "zstd",
                                                                             "row_group_size": 1000}}})
    defs = Definitions.load(project)
    assert defs.io_managers["default"].format_options == {"parquet": {"compression": "zstd", "row_group_size": 1000}}


@pytest.mark.parametrize("options,message", [
    ({"compression": "zstd"}, (r"options are keyed by format name, and 'compression' is not one; write e\.g\. "
                               r"\{parquet: \{compression: zstd\}\}")),
    ({"parquet": {"compresion": "zstd"}}, r"options\.parquet has no option 'compresion' \(did you mean 'compression'"),
    ({"parquet": {"compression": "zstandard"}}, r"options\.parquet: compression 'zstandard' is not available; use one of"),
    ({"parquet": {"row_group_size": 0}}, r"row_group_size must be a positive number of rows"),
    ({"parket": {}}, r"'parket' is not one \(did you mean 'parquet'\?\)"),
])
def test_bad_format_options_name_the_file_and_the_io_manager(project, options, message):
    configure(project, lake={"base_uri": "./lake", "options": options})
    with pytest.raises(AssetsError) as error:
        Definitions.load(project)
    text = str(error.value)
    assert text.startswith(f"{project / 'prefect_assets.yaml'}: io_managers.lake: "), text
    assert re.search(message, text), text


def test_unknown_protocol_and_missing_package_are_one_line(project):
    configure(project, lake={"base_uri": "nosuchproto://bucket/x", "storage_options": {"secret": "hunter2-secret"}})
    with pytest.raises(AssetsError) as error:
        Definitions.load(project)
    assert "io_managers.lake" in str(error.value) and "hunter2-secret" not in str(error.value)
    result = run_cli("list", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nosuchproto://bucket/x" in result.stderr and "hunter2-secret" not in result.stderr
