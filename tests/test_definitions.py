"""Definitions: loading a project's modules, collecting assets, wiring IO managers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from prefect_assets import AssetKey, AssetsError, Definitions, asset
from prefect_assets.config import PROJECT_FILE
from prefect_assets.io_managers import FsspecIOManager, OutputContext


def write_project(folder: Path, config: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROJECT_FILE).write_text(textwrap.dedent(config))
    for name, source in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return folder


def stored_at(defs: Definitions, key: AssetKey) -> Path:
    """Where the asset's IO manager puts a JSON value, as a local path."""
    io_manager = defs.io_manager_for(key)
    stored = io_manager.handle_output(OutputContext(key), {"value": 1})
    return Path(io_manager.base_uri.removeprefix("file://")) / stored.path


def test_example_project_loads(project):
    defs = Definitions.load(project)
    assert defs.name == "shop"
    assert len(defs.graph) == 9  # collected from every module of the shop_assets package
    groups = {str(k): defs.definition(k).group for k in defs.graph.keys}
    assert {g for g in groups.values()} == {"raw", "clean", "reports"}
    kpis = defs.graph.nodes[AssetKey.parse("reports/kpis")]
    assert kpis.upstream == {AssetKey.parse("reports/daily_revenue"), AssetKey.parse("prices")}
    assert stored_at(defs, kpis.key) == (project / "data" / "reports" / "kpis.json").resolve()


def test_an_asset_imported_into_another_module_is_collected_once(tmp_path):
    root = write_project(tmp_path / "p", "modules: [pa_defs_once]\n", {
        "pa_defs_once/__init__.py": "",
        "pa_defs_once/raw.py": """
            from prefect_assets import asset

            @asset
            def numbers():
                return [1, 2]
        """,
        "pa_defs_once/report.py": """
            from prefect_assets import asset
            from pa_defs_once.raw import numbers  # the same object, not a second asset

            @asset
            def total(numbers):
                return sum(numbers)
        """,
    })
    assert [str(k) for k in Definitions.load(root).graph.keys] == ["numbers", "total"]


def test_io_manager_referenced_but_not_configured(tmp_path):
    root = write_project(tmp_path / "p", "modules: [pa_defs_iom]\n", {"pa_defs_iom.py": """
        from prefect_assets import asset

        @asset(io_manager="warehouse")
        def numbers():
            return [1]
    """})
    with pytest.raises(AssetsError) as raised:
        Definitions.load(root)
    message = str(raised.value)
    assert "asset 'numbers'" in message and "pa_defs_iom.py:4" in message
    assert "io_manager 'warehouse' is not configured" in message
    assert "io_managers.warehouse" in message and "configured: default" in message


def test_unknown_module_names_the_config_file(tmp_path):
    root = write_project(tmp_path / "p", "modules: [pa_defs_no_such_module]\n", {})
    with pytest.raises(AssetsError) as raised:
        Definitions.load(root)
    assert str(root / PROJECT_FILE) in str(raised.value)
    assert "cannot import 'pa_defs_no_such_module'" in str(raised.value)


def test_syntax_error_in_a_module_names_file_and_line(tmp_path):
    root = write_project(tmp_path / "p", "modules: [pa_defs_syntax]\n", {"pa_defs_syntax.py": "x = 1\ndef broken(:\n"})
    with pytest.raises(AssetsError, match=r"pa_defs_syntax\.py:2: syntax error"):
        Definitions.load(root)


def test_module_failing_at_import_names_where(tmp_path):
    root = write_project(tmp_path / "p", "modules: [pa_defs_raises]\n", {"pa_defs_raises.py": """
        from prefect_assets import asset

        LIMIT = int("ten")
    """})
    with pytest.raises(AssetsError) as raised:
        Definitions.load(root)
    assert "pa_defs_raises" in str(raised.value) and "pa_defs_raises.py:4" in str(raised.value)


def test_decoration_error_in_a_project_module_surfaces_at_load(tmp_path):
    root = write_project(tmp_path / "p", "modules: [pa_defs_bad_option]\n", {"pa_defs_bad_option.py": """
        from prefect_assets import asset

        @asset(retries=-1)
        def numbers():
            return [1]
    """})
    with pytest.raises(AssetsError, match="retries must be a whole number"):
        Definitions.load(root)


VERSION = """
from prefect_assets import asset

@asset
def value():
    return {n}
"""


def test_projects_sharing_module_names_each_get_their_own_code(tmp_path):
    config = "modules: [pa_defs_shared]\n"
    first = write_project(tmp_path / "first", config, {"pa_defs_shared.py": VERSION.format(n=1)})
    second = write_project(tmp_path / "second", config, {"pa_defs_shared.py": VERSION.format(n=2)})

    def loaded_value(root: Path) -> int:
        defs = Definitions.load(root)
        return defs.definition(AssetKey.parse("value")).fn()

    assert loaded_value(first) == 1
    assert loaded_value(second) == 2
    assert loaded_value(first) == 1  # not the second project's module, still cached


def test_reloading_picks_up_an_edited_module(tmp_path):
    root = write_project(tmp_path / "p", "modules: [pa_defs_edited]\n", {"pa_defs_edited.py": VERSION.format(n=1)})
    before = Definitions.load(root).definition(AssetKey.parse("value"))
    (root / "pa_defs_edited.py").write_text(VERSION.format(n=1000))  # a different size, so no stale .pyc
    after = Definitions.load(root).definition(AssetKey.parse("value"))
    assert (before.fn(), after.fn()) == (1, 1000)
    assert before.code_version != after.code_version


def test_custom_io_manager_type(tmp_path):
    root = write_project(tmp_path / "p", """
        modules: [pa_defs_custom]
        io_managers:
          memory: {type: "pa_defs_custom_io:DictIOManager", options: {label: mine}}
          wrong: {type: "pa_defs_custom_io:NotAnIOManager"}
    """, {
        "pa_defs_custom.py": """
            from prefect_assets import asset

            @asset(io_manager="memory")
            def numbers():
                return [1]
        """,
        "pa_defs_custom_io.py": """
            from prefect_assets import IOManager

            class DictIOManager(IOManager):
                def __init__(self, label):
                    self.label = label
                def handle_output(self, context, obj): ...
                def load_input(self, context): ...

            class NotAnIOManager:
                pass
        """,
    })
    with pytest.raises(AssetsError, match=r"io_managers\.wrong\.type: 'pa_defs_custom_io:NotAnIOManager' is not a subclass"):
        Definitions.load(root)
    config = (root / PROJECT_FILE).read_text().replace('  wrong: {type: "pa_defs_custom_io:NotAnIOManager"}\n', "")
    (root / PROJECT_FILE).write_text(config)
    defs = Definitions.load(root)
    io_manager = defs.io_manager_for(AssetKey.parse("numbers"))
    assert type(io_manager).__name__ == "DictIOManager" and io_manager.label == "mine"
    # its records go to the default IO manager's store, since it keeps none itself
    assert defs.record_store_for(AssetKey.parse("numbers")) is defs.io_managers["default"].record_store


def test_definitions_in_python(tmp_path, monkeypatch):
    @asset
    def numbers():
        return [1, 2]

    monkeypatch.chdir(tmp_path)
    defs = Definitions([numbers])
    assert stored_at(defs, numbers.key) == tmp_path.resolve() / "data" / "numbers.json"  # ./data by default
    custom = FsspecIOManager(str(tmp_path / "elsewhere"))
    assert Definitions([numbers], io_managers={"default": custom}).io_manager_for(numbers.key) is custom
