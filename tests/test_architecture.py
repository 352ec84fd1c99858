"""The package's shape, checked from its source: rooms import downwards only, with no circles;
the asset model and storage know nothing of Prefect; runner names and run options are declared
once and every entry point derives from that declaration (docs/architecture.md)."""

from __future__ import annotations

import ast
import graphlib
import inspect
from pathlib import Path

import pytest

import prefect_assets

PACKAGE = Path(prefect_assets.__file__).parent

#: Each room's floor: a module may import only from its own floor or below
#: (cli → deployments → flows → definitions/config → io_managers → assets).
FLOORS = {
    "errors": 0,
    "assets": 1,
    "config": 2,
    "runner_registry": 2,
    "io_managers": 3,
    "_prefect_compat": 4,
    "core_definitions": 4,
    "flows": 5,
    "definitions": 6,
    "deployments": 7,
    "__init__": 8,
    "cli": 9,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("prefect_assets", *parts)).removesuffix(".__init__")
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``prefect_assets`` module ``path`` imports, at any depth of the file (a function's
    lazy import and a ``TYPE_CHECKING`` one count as much as a top-level one)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
            names.append((node.module, node.lineno))
    return [(_known_module(name), line) for name, line in names if _known_module(name)]


def _known_module(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_has_a_floor():
    assert {_room(m) for m in MODULES} <= set(FLOORS)


def test_imports_point_down_only():
    upward = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}"
        for module in MODULES
        for target, line in _imports(MODULES[module])
        if FLOORS[_room(target)] > FLOORS[_room(module)]
    ]
    assert not upward, "imports that point up a floor:\n" + "\n".join(upward)


def test_no_import_circles():
    graph = {module: {t for t, _ in _imports(path) if t != module} - {"prefect_assets"} for module, path in MODULES.items()}
    # A package's __init__ is imported with any of its modules; that is not a dependency of the
    # module on its siblings, so packages' own __init__ edges are left out.
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("room", ["assets", "io_managers", "config", "runner_registry", "errors"])
def test_model_and_storage_do_not_import_prefect(room):
    for module, path in MODULES.items():
        if _room(module) != room:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "prefect" or n.startswith("prefect.") for n in names), f"{path}:{node.lineno}"


def test_the_asset_model_leaves_the_process_alone():
    """Nothing in assets/ changes sys.path, the environment or the working directory."""
    mutators = {"insert", "append", "extend", "remove", "pop", "clear", "update", "setdefault", "__setitem__"}

    def dotted(node: ast.AST) -> str:
        if isinstance(node, ast.Attribute):
            return f"{dotted(node.value)}.{node.attr}"
        if isinstance(node, ast.Subscript):
            return dotted(node.value)
        return node.id if isinstance(node, ast.Name) else ""

    for module, path in MODULES.items():
        if _room(module) != "assets":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            changes = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = dotted(node.func.value)
                if target in ("sys.path", "os.environ") and node.func.attr in mutators:
                    changes.append(target)
                if dotted(node.func) in ("os.chdir", "os.putenv", "os.unsetenv"):
                    changes.append(dotted(node.func))
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                changes += [dotted(t) for t in targets if dotted(t) in ("sys.path", "os.environ")]
            assert not changes, f"{path}:{node.lineno} changes {changes}"


def test_runner_names_come_from_the_registry():
    """The config file, the CLI, run options, deployment parameters and the deployable flow
    offer exactly the registry's runners."""
    from typer.main import get_command

    from prefect_assets.cli import app
    from prefect_assets.config import ProjectConfig
    from prefect_assets.deployments.spec import RunParameters
    from prefect_assets.flows.entry import materialize_assets
    from prefect_assets.flows.options import RunOptions
    from prefect_assets.runner_registry import RUNNERS

    names = list(RUNNERS)

    def enum_of(schema: object) -> list[str]:
        """The one ``enum`` list inside a JSON schema (however deeply nested)."""
        if isinstance(schema, dict):
            if "enum" in schema:
                return schema["enum"]
            found = [enum_of(v) for v in schema.values()]
        else:
            found = [enum_of(v) for v in schema] if isinstance(schema, list) else []
        return next((f for f in found if f), [])

    assert enum_of(ProjectConfig.model_json_schema()["$defs"]["RunnerConfig"]["properties"]["type"]) == names
    assert enum_of(RunOptions.model_json_schema()["properties"]["runner"]) == names
    assert enum_of(RunParameters.model_json_schema()["properties"]["runner"]) == names
    assert enum_of(materialize_assets.parameters.model_dump()["properties"]["runner"]) == names
    materialize_command = get_command(app).commands["materialize"]
    runner_option = next(p for p in materialize_command.params if p.name == "runner")
    assert [choice.value for choice in runner_option.type_descriptor.annotation] == names


def test_runner_names_are_written_nowhere_else():
    """No module but the registry spells a runner's name as a string (the one ``process`` in
    deployments/server.py is the type of a Prefect work pool, not a runner)."""
    from prefect_assets.runner_registry import RUNNERS

    found = []
    for module, path in MODULES.items():
        if module == "prefect_assets.runner_registry":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in RUNNERS:
                found.append((str(path.relative_to(PACKAGE)), node.value))
    assert found == [("deployments/server.py", "process")]


def test_the_deployable_flow_takes_exactly_the_run_options():
    from prefect_assets.flows.entry import materialize_assets
    from prefect_assets.flows.options import RunOptions

    parameters = list(inspect.signature(materialize_assets.fn).parameters)
    assert parameters == ["project", *RunOptions.model_fields]
    defaults = {name: p.default for name, p in inspect.signature(materialize_assets.fn).parameters.items()}
    assert {name: defaults[name] for name in RunOptions.model_fields} == {
        name: field.default for name, field in RunOptions.model_fields.items()
    }


def test_the_runner_docs_are_the_registry_table():
    from prefect_assets.runner_registry import runner_table

    docs = (PACKAGE.parent / "docs" / "runners.md").read_text(encoding="utf-8")
    assert runner_table() in docs, "docs/runners.md: paste the output of prefect_assets.runner_registry.runner_table()"
