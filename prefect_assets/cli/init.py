"""``prefect-assets init DIR``: scaffold a small working project."""

from __future__ import annotations

from pathlib import Path

import typer

from prefect_assets.cli.common import app, out, user_errors
from prefect_assets.config import PROJECT_FILE
from prefect_assets.errors import AssetsError

PROJECT_YAML = """\
# prefect-assets project: see `prefect-assets --help`.
name: {name}
modules: [assets]
io_managers:
  default: {{base_uri: ./data}}      # any fsspec URL, e.g. s3://bucket/prefix
runner: {{type: thread, max_workers: 4}}
defaults: {{retries: 0}}
"""

ASSETS_PY = '''\
"""Your assets. Parameter names are upstream assets; return values are stored for you."""

import pyarrow as pa

from prefect_assets import AssetContext, asset


@asset(group="raw")
def numbers() -> pa.Table:
    """Some raw data (replace with a read from your source)."""
    return pa.table({"n": list(range(1, 101))})


@asset(group="clean")
def squares(numbers: pa.Table) -> pa.Table:
    """A derived table: loaded from storage, computed, stored again."""
    values = numbers["n"].to_pylist()
    return pa.table({"n": values, "square": [v * v for v in values]})


@asset(group="reports")
def summary(context: AssetContext, squares: pa.Table) -> dict:
    """A small JSON report."""
    total = sum(squares["square"].to_pylist())
    context.add_metadata(rows=squares.num_rows)
    return {"sum_of_squares": total}
'''


@app.command()
@user_errors
def init(directory: Path = typer.Argument(..., help="Folder to create the project in.")) -> None:
    """Scaffold a working example project (three assets, local storage)."""
    target = directory.expanduser().resolve()
    if (target / PROJECT_FILE).exists() or (target / "assets.py").exists():
        raise AssetsError(f"{target} already holds a project; choose an empty or new folder")
    target.mkdir(parents=True, exist_ok=True)
    (target / PROJECT_FILE).write_text(PROJECT_YAML.format(name=target.name or "assets"))
    (target / "assets.py").write_text(ASSETS_PY)
    (target / ".gitignore").write_text("data/\n__pycache__/\n")
    out.print(f"created {target}\nnext: cd {target} && prefect-assets materialize && prefect-assets status")
