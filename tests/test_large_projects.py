"""Large projects: deep graphs without recursion, ``--json``, plain tables, cached code versions.

Speed lives in ``benchmarks/large_project.py``; these tests check behaviour only.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_assets.assets import code_version
from prefect_assets.assets.graph import AssetGraph
from prefect_assets.assets.selection import downstream, select, upstream
from prefect_assets.assets.versions import graph_status
from prefect_assets.cli import render
from prefect_assets.cli.common import RICH_TABLE_ROWS
from prefect_assets.config import PROJECT_FILE
from prefect_assets.definitions import Definitions
from prefect_assets.io_managers import MaterializationRecord
from tests.conftest import run_cli

DEPTH = 5_000


def chain_source(count: int) -> str:
    lines = ["from prefect_assets import asset\n\n", "@asset\ndef c00000():\n    return 0\n"]
    lines += [f"\n@asset\ndef c{i:05d}(c{i - 1:05d}):\n    return c{i - 1:05d} + 1\n" for i in range(1, count)]
    return "".join(lines)


@pytest.fixture(scope="module")
def chain_project(tmp_path_factory) -> Path:
    """A project whose assets form one chain, 5,000 deep."""
    root = tmp_path_factory.mktemp("chain")
    (root / PROJECT_FILE).write_text("name: chain\nmodules: [chain]\n")
    (root / "chain.py").write_text(chain_source(DEPTH))
    return root


@pytest.fixture
def low_recursion_limit() -> Iterator[None]:
    """Any recursion per level of the graph would fail far above this."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An empty cache folder of the test's own, and no versions known in memory."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("PREFECT_ASSETS_CACHE_DIR", str(folder))
    new_process(monkeypatch)
    return folder


def new_process(monkeypatch) -> None:
    """Forget the versions this process has read or computed, as a new process would."""
    monkeypatch.setattr(code_version, "_CACHE", code_version._DiskCache())


# ---------------------------------------------------------------------------------------------
# A 5,000-deep chain


def test_graph_of_a_5000_deep_chain_in_every_format(chain_project):
    keys = [f"c{i:05d}" for i in range(DEPTH)]

    text = run_cli("graph", cwd=chain_project)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"{DEPTH} assets"
    assert "RecursionError" not in text.stderr
    # every asset drawn once, in chain order; the tree continues instead of indenting forever
    drawn = [m.group(1) for line in lines[1:] if (m := re.search(r"── (c\d{5}) default( \(continued below\))?$", line))]
    assert drawn == keys
    assert max(len(line) for line in lines) < 4 * render.TREE_DEPTH + 50
    assert "── c00023 default (continued below)" in text.stdout
    assert "── c00023 default (continued)" in text.stdout

    mermaid = run_cli("graph", "--format", "mermaid", cwd=chain_project)
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.count(" --> ") == DEPTH - 1
    assert "  n_c04998 --> n_c04999" in mermaid.stdout

    dot = run_cli("graph", "-f", "dot", cwd=chain_project)
    assert dot.returncode == 0, dot.stderr
    assert dot.stdout.count(" -> ") == DEPTH - 1 and dot.stdout.rstrip().endswith("}")

    as_json = run_cli("graph", "--json", cwd=chain_project)
    assert as_json.returncode == 0, as_json.stderr
    assets = json.loads(as_json.stdout)["assets"]
    assert [a["key"] for a in assets] == keys
    assert assets[1] == {"key": "c00001", "group": "default", "upstream": ["c00000"], "downstream": ["c00002"]}


def test_list_and_status_of_a_large_project_print_plain_aligned_tables(chain_project):
    assert DEPTH > RICH_TABLE_ROWS
    listed = run_cli("list", cwd=chain_project)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["asset", "group", "upstream", "io", "manager", "last", "materialized"]
    assert lines[2].split() == ["c00001", "default", "c00000", "default", "-"]
    assert len(lines) == DEPTH + 1
    assert len({line.index("default") for line in lines[1:]}) == 1  # one column, aligned
    status = run_cli("status", "--select", "c00002+", cwd=chain_project)
    assert status.returncode == 0, status.stderr
    rows = status.stdout.splitlines()[1:]
    assert len(rows) == DEPTH - 2 and rows[0].split()[:4] == ["c00002", "missing", "(never", "materialized)"]


def test_graph_walks_and_status_use_no_recursion(chain_project, low_recursion_limit):
    defs = Definitions.load(chain_project)
    graph = defs.graph
    first, last = graph.find("c00000"), graph.find(f"c{DEPTH - 1:05d}")
    assert len(upstream(graph, [last])) == DEPTH and len(downstream(graph, [first])) == DEPTH
    assert len(select(graph, f"+c{DEPTH - 1:05d}")) == DEPTH
    statuses = graph_status(graph, {}, [last])
    assert statuses[last].state == "missing"
    for draw in (render.text_tree, render.mermaid, render.dot, render.graph_json):
        assert draw(graph, graph.keys)


# ---------------------------------------------------------------------------------------------
# --json


def test_json_of_list_status_and_graph_holds_the_documented_fields(project):
    listed = json.loads(run_cli("list", "--json", cwd=project).stdout)["assets"]
    paid = next(a for a in listed if a["key"] == "paid_orders")
    assert paid == {"key": "paid_orders", "group": "clean", "upstream": ["orders", "prices"],
                    "io_manager": "default", "tags": {}, "last_materialized": None}
    assert [a["key"] for a in listed][:3] == ["customers", "orders", "prices"]  # dependency order

    status = json.loads(run_cli("status", "--json", "--select", "+paid_orders", cwd=project).stdout)["assets"]
    assert [a["key"] for a in status] == ["orders", "prices", "paid_orders"]
    assert status[0] == {"key": "orders", "status": "missing", "cause": "never materialized",
                         "last_materialized": None, "bytes": None, "rows": None, "data_version": None}

    graph = json.loads(run_cli("graph", "--json", "--select", "paid_orders+", cwd=project).stdout)["assets"]
    assert graph[0] == {"key": "paid_orders", "group": "clean", "upstream": [],  # only within the selection
                        "downstream": ["orders_by_customer", "reports/daily_revenue"]}

    both = run_cli("graph", "--json", "--format", "dot", cwd=project)
    assert both.returncode == 2 and "--json and --format dot" in both.stderr


def test_json_of_status_after_a_store(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / PROJECT_FILE).write_text("modules: [m]\n")
    (root / "m.py").write_text(SOURCE)
    store_everything(root)
    status = json.loads(run_cli("status", "--json", cwd=root).stdout)["assets"]
    assert [(a["key"], a["status"], a["cause"]) for a in status] == [("base", "fresh", None), ("total", "fresh", None)]
    assert status[1]["bytes"] == 1 and status[1]["data_version"] and status[1]["last_materialized"].startswith("2026-")


# ---------------------------------------------------------------------------------------------
# Code versions: computed on use, cached by content


SOURCE = '''\
from prefect_assets import asset


@asset
def base():
    return 1


@asset
def total(base):
    return base + 1
'''


def load(root: Path) -> Definitions:
    return Definitions.load(root)


def store_everything(root: Path) -> None:
    """Store every asset's value and record as a run would, without Prefect."""
    from prefect_assets.io_managers.base import OutputContext

    defs = Definitions.load(root)
    versions: dict[str, str] = {}
    for key in defs.graph.keys:
        stored = defs.io_manager_for(key).handle_output(OutputContext(key), 1)
        versions[str(key)] = stored.data_version
        defs.record_store_for(key).write(MaterializationRecord(
            key=str(key), partition=None, run_id=None, timestamp="2026-12-03T00:00:00+00:00",
            code_version=defs.definition(key).code_version,
            input_versions={str(k): versions[str(k)] for k in defs.graph.upstream_of(key)},
            data_version=stored.data_version, format=stored.format, path=stored.path,
            bytes=stored.bytes, rows=stored.rows, identity=stored.identity,
        ))


@pytest.fixture
def module_project(tmp_path) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / PROJECT_FILE).write_text("modules: [m]\n")
    (root / "m.py").write_text(SOURCE)
    return root


def cache_entries(folder: Path) -> dict[str, dict[str, str]]:
    return {path.stem: json.loads(path.read_text()) for path in folder.rglob("*.json")}


def test_code_versions_are_computed_only_when_used(module_project, cache_dir):
    defs = load(module_project)
    render.text_tree(defs.graph, defs.graph.keys)
    render.graph_json(defs.graph, defs.graph.keys)
    assert all("code_version" not in vars(defs.definition(k)) for k in defs.graph.keys)
    graph_status(defs.graph, {}, defs.graph.keys)  # nothing stored: no version needed
    assert all("code_version" not in vars(defs.definition(k)) for k in defs.graph.keys)
    base = defs.graph.find("base")
    assert len(defs.definition(base).code_version) == 16
    assert "code_version" not in vars(defs.definition(defs.graph.find("total")))


def test_the_cache_holds_what_was_computed_and_a_new_process_reads_it(module_project, cache_dir, monkeypatch):
    defs = load(module_project)
    versions = {str(k): defs.definition(k).code_version for k in defs.graph.keys}
    code_version.save_cache()
    (entries,) = cache_entries(cache_dir).values()
    assert sorted(entries.values()) == sorted(versions.values())
    assert set(entries) == {"base:4", "total:9"}  # qualified name : first line of the block
    # A cache file says a version; the next load believes it: the key is the module's content.
    (path,) = cache_dir.rglob("*.json")
    path.write_text(json.dumps({**entries, "total:9": "0123456789abcdef"}))
    new_process(monkeypatch)
    assert load(module_project).definition(defs.graph.find("total")).code_version == "0123456789abcdef"


def test_an_edited_module_gets_new_versions_never_the_cached_ones(module_project, cache_dir, monkeypatch):
    before = load(module_project)
    old = {str(k): before.definition(k).code_version for k in before.graph.keys}
    code_version.save_cache()
    # Poison the cache for the old text: had the edited module been served from it, we'd see it.
    (path,) = cache_dir.rglob("*.json")
    path.write_text(json.dumps({"base:4": "aaaaaaaaaaaaaaaa", "total:9": "bbbbbbbbbbbbbbbb"}))
    new_process(monkeypatch)

    (module_project / "m.py").write_text(SOURCE.replace("return base + 1", "return base + 100"))
    after = load(module_project)
    new = {str(k): after.definition(k).code_version for k in after.graph.keys}
    assert new["total"] != old["total"] and new["total"] != "bbbbbbbbbbbbbbbb"
    assert new["base"] == old["base"]  # the same function in the edited module: the same version
    new_process(monkeypatch)
    assert load(module_project).definition(after.graph.find("total")).code_version == new["total"]

    # Moved down two lines, unchanged: another cache entry, the same version as computed fresh.
    (module_project / "m.py").write_text(SOURCE.replace("@asset\ndef total", "\n\n@asset\ndef total"))
    moved = load(module_project)
    assert moved.definition(moved.graph.find("total")).code_version == old["total"]


def test_versions_through_the_cache_equal_the_uncached_hash(module_project, cache_dir, tmp_path, monkeypatch):
    (module_project / "m.py").write_text(SOURCE + '''

def _wrap(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


class Holder:
    @staticmethod
    def method(base):
        """A docstring is not part of the version."""
        return base * 2


@asset(name="wrapped")
@_wrap
def wrapped_fn(base):
    return base - 1


method = asset(Holder.method, name="method")
''')
    defs = load(module_project)
    cold = {str(k): defs.definition(k).code_version for k in defs.graph.keys}
    code_version.save_cache()
    new_process(monkeypatch)
    warm = {str(k): load(module_project).definition(k).code_version for k in defs.graph.keys}
    assert cold == warm
    module = sys.modules["m"]
    assert cold == {
        "base": reference_version(module.base.fn), "total": reference_version(module.total.fn),
        "wrapped": reference_version(module.wrapped_fn.fn), "method": reference_version(module.method.fn),
    }


def reference_version(fn) -> str:
    """The code version as 0.3.0 computed it at decoration, with no cache: what records hold."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    node = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    node.decorator_list = []
    if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant) \
            and isinstance(node.body[0].value.value, str):
        node.body = node.body[1:]
    return hashlib.sha256(ast.dump(node, annotate_fields=False, include_attributes=False).encode()).hexdigest()[:16]


def test_an_unusable_cache_folder_costs_time_only(module_project, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PREFECT_ASSETS_CACHE_DIR", str(blocker / "cache"))
    defs = load(module_project)
    assert len(defs.definition(defs.graph.find("total")).code_version) == 16
    code_version.save_cache()  # cannot write: no error
    result = run_cli("status", cwd=module_project, env={"PREFECT_ASSETS_CACHE_DIR": str(blocker / "cache")})
    assert result.returncode == 0, result.stderr


def test_status_computes_versions_for_the_selection_and_its_upstream_only(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "p"
    root.mkdir()
    (root / PROJECT_FILE).write_text("modules: [m]\n")
    (root / "m.py").write_text(SOURCE + "\n\n@asset\ndef other():\n    return 3\n")
    store_everything(root)
    new_process(monkeypatch)
    defs = load(root)
    keys = select(defs.graph, "total")
    records = defs.read_records(upstream(defs.graph, keys))
    assert graph_status(defs.graph, records, keys)[defs.graph.find("total")].state == "fresh"
    computed = {str(k) for k in defs.graph.keys if "code_version" in vars(defs.definition(k))}
    assert computed == {"base", "total"}


def test_a_lambda_asset_has_a_bytecode_version():
    graph = AssetGraph([code_version_lambda()])
    (key,) = graph.keys
    assert len(graph.nodes[key].definition.code_version) == 16


def code_version_lambda():
    from prefect_assets import asset

    return asset(lambda: 1, name="one")


def test_list_status_and_graph_do_not_import_prefect(project):
    """Prefect takes seconds to import; these commands answer without it (and without a server)."""
    for command in (["list"], ["status"], ["graph"], ["graph", "-f", "dot"], ["status", "--json"]):
        code = (
            "import sys\n"
            "from prefect_assets.cli import main\n"
            f"try:\n    main({[*command, '--project', str(project)]!r})\n"
            "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "loaded = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
            "print('prefect modules:', loaded, file=sys.stderr)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "prefect modules: []" in result.stderr, (command, result.stderr[-500:])
