"""The fence around Prefect's internals (prefect_assets/_prefect_compat/, docs/architecture.md).

- **Every probe finds its internal** on this Prefect: a release that moves one fails here,
  instead of silently running the fallback and only slowing a benchmark down. With
  ``PREFECT_ASSETS_STOCK_PREFECT`` set, every touchpoint must report itself unavailable.
- **The fallbacks run**: with the switch on, runs on threads, processes and Dask complete and
  record what they always record, on Prefect's stock runners.
- **Nothing outside the fence touches an internal**: an AST scan of the package names the
  file and line of each private use it finds outside ``_prefect_compat/``.
- The timeout scope of our own that replaced Prefect's (:mod:`prefect_assets.flows.deadline`).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import prefect_assets
from prefect_assets._prefect_compat import STOCK_PREFECT_ENV, stock_prefect
from tests.conftest import run_cli

PACKAGE = Path(prefect_assets.__file__).parent
FENCE = PACKAGE / "_prefect_compat"

#: Every touchpoint module, and the distribution it needs beyond Prefect (skipped without it;
#: the names carry "dask" and "ray", which the oldest-Prefect subset deselects).
TOUCHPOINTS = {
    "process_pool": None,
    "pool_warnings": None,
    "settings_context": None,
    "settings_reload": None,
    "client_context": None,
    "worker_events": None,
    "plugins": None,
    "dask_client": "prefect_dask",
    "ray_runner": "prefect_ray",
    "ephemeral_server": None,
}


def _missing(module: str | None) -> bool:
    return module is not None and importlib.util.find_spec(module) is None


def _touchpoint_params():
    return [
        pytest.param(name, marks=pytest.mark.skipif(_missing(extra), reason=f"{extra} not installed"), id=name)
        for name, extra in TOUCHPOINTS.items()
    ]


# --- every probe pinned ----------------------------------------------------------------------


def test_every_touchpoint_module_is_pinned_here():
    modules = {path.stem for path in FENCE.glob("*.py") if path.stem != "__init__"}
    assert modules == set(TOUCHPOINTS), "add the new touchpoint to TOUCHPOINTS (its probe gets pinned)"


@pytest.mark.parametrize("touchpoint", _touchpoint_params())
def test_the_probe_finds_the_internal_on_this_prefect(touchpoint):
    """``probe()`` is true on every Prefect we support, and ``AVAILABLE`` with it unless the
    switch is on: a moved internal fails here, not as a silent fallback."""
    import prefect

    module = importlib.import_module(f"prefect_assets._prefect_compat.{touchpoint}")
    assert module.probe(), (
        f"_prefect_compat.{touchpoint}: Prefect {prefect.__version__} no longer has what its fast path relies on "
        "(see the module's probe); runs fall back to stock Prefect"
    )
    assert module.AVAILABLE is (not stock_prefect())


def test_the_switch_turns_every_touchpoint_off_without_probing():
    """In a fresh interpreter with the switch on, every ``AVAILABLE`` is False, and the server
    touchpoint does not even import Prefect's server package."""
    names = [name for name, extra in TOUCHPOINTS.items() if not _missing(extra)]
    script = (
        "import importlib, json, sys\n"
        f"names = {names!r}\n"
        "found = {n: importlib.import_module('prefect_assets._prefect_compat.' + n).AVAILABLE for n in names}\n"
        "print(json.dumps({'available': found, 'server_imported': 'prefect.server.api.server' in sys.modules}))\n"
    )
    env = {**os.environ, STOCK_PREFECT_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"available": dict.fromkeys(names, False), "server_imported": False}


@pytest.mark.parametrize(("value", "stock"), [("1", True), ("yes", True), ("", False), ("0", False), ("false", False)])
def test_the_switch_reads_the_environment(value, stock, monkeypatch):
    monkeypatch.setenv(STOCK_PREFECT_ENV, value)
    assert stock_prefect() is stock


def test_a_probe_that_raises_has_found_nothing(monkeypatch):
    from prefect_assets._prefect_compat import available

    monkeypatch.delenv(STOCK_PREFECT_ENV, raising=False)

    def moved() -> bool:
        raise AttributeError("moved in a new release")

    assert available(moved) is False
    assert available(lambda: True) is True
    monkeypatch.setenv(STOCK_PREFECT_ENV, "1")
    assert available(lambda: pytest.fail("not probed with the switch on")) is False


# --- the fallbacks run -------------------------------------------------------------------------

FALLBACK_ASSETS = '''
import os

from prefect_assets import asset


@asset
def parent_pid() -> int:
    return os.getppid()


@asset(timeout_seconds=60)
def doubled(parent_pid: int) -> int:
    return 2


@asset
def total(parent_pid: int, doubled: int) -> dict:
    return {"pid": os.getpid(), "sum": doubled + 1}
'''


@pytest.fixture
def stock(monkeypatch):
    """Stock Prefect everywhere: the switch in the environment (worker processes started now
    inherit it) and every touchpoint already imported here turned off."""
    monkeypatch.setenv(STOCK_PREFECT_ENV, "1")
    for name, extra in TOUCHPOINTS.items():
        if not _missing(extra):
            monkeypatch.setattr(importlib.import_module(f"prefect_assets._prefect_compat.{name}"), "AVAILABLE", False)


def _fallback_run(tmp_path: Path, runner: dict):
    from prefect_assets import Definitions, materialize
    from prefect_assets.flows.runners.backend import make_task_runner
    from tests.test_runners import (
        stored_values,
        summary_artifact,
        task_runs,
        write_project,
    )

    root = write_project(tmp_path / "proj", "fallback_assets", FALLBACK_ASSETS, str(tmp_path / "data"),
                         extra=f"runner: {json.dumps(runner)}\n")
    defs = Definitions.load(root)
    result = materialize(defs)
    assert result.success, result.summary_rows()
    values = {str(key): value for key, value in stored_values(defs, defs.graph.keys).items()}
    assert values["doubled"] == 2 and values["total"]["sum"] == 3
    runs = task_runs(result.flow_run_id, dict.fromkeys(["parent_pid", "doubled", "total"], "Completed"))
    assert len(summary_artifact(result.flow_run_id)) == 1
    return make_task_runner(defs.runner), values, runs


@pytest.mark.prefect
def test_stock_prefect_runs_on_threads(stock, tmp_path, prefect_server):
    from prefect.task_runners import ThreadPoolTaskRunner

    task_runner, values, _ = _fallback_run(tmp_path, {"type": "thread", "max_workers": 2})
    assert type(task_runner) is ThreadPoolTaskRunner
    assert values["total"]["pid"] == os.getpid()


@pytest.mark.prefect
def test_stock_prefect_runs_on_processes(stock, tmp_path, prefect_server):
    """Prefect's own process pool: its workers are spawned by this process, not forked from a
    forkserver, and the run records every task run all the same."""
    from prefect.task_runners import ProcessPoolTaskRunner

    task_runner, values, _ = _fallback_run(tmp_path, {"type": "process", "max_workers": 2})
    assert type(task_runner) is ProcessPoolTaskRunner
    assert values["parent_pid"] == os.getpid()  # spawned by this process: Prefect's pool
    assert values["total"]["pid"] != os.getpid()


@pytest.mark.prefect
@pytest.mark.skipif(_missing("prefect_dask"), reason="prefect_dask not installed")
def test_stock_prefect_runs_on_dask(stock, tmp_path, prefect_server):
    from prefect_dask import DaskTaskRunner

    task_runner, values, _ = _fallback_run(tmp_path, {"type": "dask", "max_workers": 1})
    assert type(task_runner) is DaskTaskRunner
    assert values["total"]["pid"] != os.getpid()


def test_stock_prefect_cli_on_processes_with_the_embedded_server(tmp_path):
    """The command on stock Prefect end to end, with no ``PREFECT_API_URL``: the embedded
    server is started by Prefect itself (its URL learned through the public client) and
    shared with the worker of Prefect's own process pool, which records every task run."""
    from tests.test_runners import write_project

    root = write_project(tmp_path / "proj", "fallback_assets", FALLBACK_ASSETS, str(tmp_path / "data"),
                         extra="runner: {type: process, max_workers: 1}\n")
    done = run_cli("materialize", cwd=root, env={STOCK_PREFECT_ENV: "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" materialized ") == 3 and ": Completed" in done.stdout, done.stdout
    assert "missing from its history" not in done.stderr, done.stderr  # the server recorded every task run


# --- the fence: no private use outside it ------------------------------------------------------

#: Packages whose private names only the fence may touch.
FAMILY = ("prefect", "prefect_dask", "prefect_ray")
#: Prefect modules only the fence may import (besides any module with an underscore part).
FORBIDDEN_MODULES = ("prefect._internal", "prefect.utilities", "prefect.server")
#: Private attributes prefect-assets once reached for on Prefect's objects (and the executor
#: Prefect builds): flagged on any object, since an object's type is not in the source.
KNOWN_PRIVATE = frozenset({
    "__var__", "_started", "_executor", "_run_prefect_task", "_run_uvicorn_command",
    "_mp_context", "_max_workers", "_initializer", "_initargs", "_processes",
})
#: Keywords of Prefect's ``async_dispatch`` functions.
PRIVATE_KEYWORDS = frozenset({"_sync"})
#: Undocumented Prefect functions and classes a touchpoint already fences: used only there.
FENCED_NAMES = frozenset({
    "EventsWorker", "SubprocessASGIServer", "refresh_global_settings_context", "setup_logging",
    "load_prefect_collections", "hydrated_context", "serialize_context",
})


def _private(name: str) -> bool:
    return name in KNOWN_PRIVATE or (name.startswith("_") and not (name.startswith("__") and name.endswith("__")))


def _in_family(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in FAMILY)


def _forbidden_module(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in FORBIDDEN_MODULES) or any(
        part.startswith("_") for part in module.split(".")[1:]
    )


def _root(node: ast.AST) -> str | None:
    """The name an expression starts from: ``a`` in ``a.b(c)[0].d``."""
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def private_uses_in(source: str, where: str) -> list[str]:
    """Each private use of Prefect's in ``source``, as ``where:line: what``.

    Found: imports of an underscore name from prefect / prefect_dask / prefect_ray, of a module
    with an underscore part, of ``prefect._internal``, ``prefect.utilities`` or
    ``prefect.server``; an underscore attribute of a name bound to something of Prefect's (an
    imported name, or a variable assigned from one); the :data:`KNOWN_PRIVATE` attributes on any
    object; an assignment to ``__class__``; an underscore keyword in a call of Prefect's, and
    ``_sync=`` anywhere; ``getattr``/``hasattr``/``setattr``/``delattr`` of such names; in a
    subclass of a Prefect class, a private method of the base overridden, or a private
    attribute used that the subclass does not define itself; and the :data:`FENCED_NAMES`.
    """
    tree = ast.parse(source)
    found: list[str] = []
    prefect_names: dict[str, str] = {}  # local name -> what it was imported as

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _in_family(alias.name):
                    if _forbidden_module(alias.name):
                        flag(node, f"imports {alias.name}")
                    local = alias.asname or alias.name.split(".")[0]
                    prefect_names[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _in_family(node.module):
            if _forbidden_module(node.module):
                flag(node, f"imports from {node.module}")
            for alias in node.names:
                if _private(alias.name):
                    flag(node, f"imports the private name {alias.name} from {node.module}")
                elif alias.name in FENCED_NAMES:
                    flag(node, f"imports {alias.name}, which a touchpoint fences, from {node.module}")
                prefect_names[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    # Variables assigned from something of Prefect's are Prefect's too (a file-wide approximation).
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _root(node.value) in prefect_names:
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id not in prefect_names:
                        prefect_names[target.id] = "a value of Prefect's"
                        changed = True

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr in KNOWN_PRIVATE:
                flag(node, f"uses .{node.attr}")
            elif _private(node.attr) and _root(node.value) in prefect_names:
                flag(node, f"uses .{node.attr} of {_root(node.value)}")
            elif node.attr in FENCED_NAMES and _root(node.value) in prefect_names:
                flag(node, f"uses {node.attr}, which a touchpoint fences")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "__class__":
                    flag(node, "assigns __class__")
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in PRIVATE_KEYWORDS or (
                    keyword.arg and _private(keyword.arg) and _root(node.func) in prefect_names
                ):
                    flag(node, f"passes the keyword {keyword.arg}=")
            if (
                isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)
                and (node.args[1].value in KNOWN_PRIVATE or _root(node.args[0]) in prefect_names)
            ):
                flag(node, f"{node.func.id}(..., {node.args[1].value!r})")
        if isinstance(node, ast.ClassDef):
            bases = [_root(base) for base in node.bases if _root(base) in prefect_names]
            if bases:
                found.extend(_private_uses_in_subclass(node, [prefect_names[b] for b in bases], where))
    return sorted(set(found), key=lambda f: int(f.split(":")[1]))


def _private_uses_in_subclass(cls: ast.ClassDef, bases: list[str], where: str) -> list[str]:
    """A subclass of a Prefect class: private methods of its bases overridden, and private
    attributes of ``self`` it uses without defining them itself."""
    base_classes = [_resolve(base) for base in bases]
    defined = set()
    for node in ast.walk(cls):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    defined.add(target.id)
                elif isinstance(target, ast.Attribute) and _root(target) == "self" and target.attr not in KNOWN_PRIVATE:
                    defined.add(target.attr)
    found = []
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name) and (
            node.name in KNOWN_PRIVATE or any(hasattr(base, node.name) for base in base_classes if base is not None)
        ):
            found.append(f"{where}:{node.lineno}: overrides the private method {node.name} of {', '.join(bases)}")
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and _private(node.attr)
            and node.attr not in defined
            and node.attr not in KNOWN_PRIVATE  # flagged already
        ):
            found.append(f"{where}:{node.lineno}: uses self.{node.attr} of {', '.join(bases)}")
    return found


def _resolve(dotted: str) -> object | None:
    """The class ``module.Name`` names, if it imports here."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def private_uses(package: Path) -> list[str]:
    """Every private use of Prefect's in ``package``, outside its ``_prefect_compat/``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent)
        if "_prefect_compat" in relative.parts or "__pycache__" in relative.parts:
            continue
        found += private_uses_in(path.read_text(encoding="utf-8"), str(relative))
    return found


def test_no_private_use_of_prefect_outside_the_fence():
    found = private_uses(PACKAGE)
    assert not found, (
        "Prefect's internals are touched outside prefect_assets/_prefect_compat/ (move each into a "
        "touchpoint with a probe and a fallback, or use a public API):\n" + "\n".join(found)
    )


VIOLATIONS = '''
from prefect._internal.concurrency import cancellation
from prefect.utilities.timeout import timeout
import prefect.server.api.server
from prefect.context import _deployment_id
from prefect.context import SyncClientContext
from prefect.artifacts import create_table_artifact
from prefect.task_runners import ProcessPoolTaskRunner
from prefect_ray import RayTaskRunner
from prefect.events.worker import EventsWorker
SyncClientContext.__var__.set(None)
client.__class__ = object
create_table_artifact(table=[], _sync=True)
runner = ProcessPoolTaskRunner()
runner._resolver_executor
getattr(RayTaskRunner, "_run_prefect_task", None)
executor._mp_context
class Pool(ProcessPoolTaskRunner):
    def _forward_subprocess_messages(self):
        return self._subprocess_message_queue
class Flushing(RayTaskRunner):
    @staticmethod
    def _run_prefect_task(*refs):
        pass
'''


def test_the_scan_finds_each_kind_of_private_use():
    found = private_uses_in(VIOLATIONS, "x.py")
    lines = sorted({int(f.split(":")[1]) for f in found})
    assert lines == [2, 3, 4, 5, 10, 11, 12, 13, 15, 16, 17, 19, 20, 23], "\n".join(found)


def test_the_scan_leaves_public_use_alone():
    public = '''
from prefect import flow, get_client
from prefect.context import FlowRunContext, SettingsContext
from prefect.task_runners import ThreadPoolTaskRunner
import prefect.runtime

context = FlowRunContext.get()
copy = context.model_copy(update={"task_runner": None})
prefect.runtime.flow_run.id
client = get_client(sync_client=True)
client.api_url
class Mine:
    def _helper(self):
        return self._own
class Runner(ThreadPoolTaskRunner):
    def __init__(self):
        super().__init__()
        self._mine = 1
    def _helper(self):
        return self._mine
'''
    assert private_uses_in(public, "ok.py") == []


# --- the deadline scope that replaced Prefect's timeout -----------------------------------------


class _Late(TimeoutError):
    pass


def _on_the_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no SIGALRM here")
def test_deadline_on_the_main_thread_interrupts_a_sleep_and_restores_the_alarm():
    from prefect_assets.flows.deadline import deadline

    assert _on_the_main_thread()
    # As in a worker process: no alarm handler yet (pytest-timeout's is put back after).
    pytests_handler = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    pytests_timer = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        started = time.monotonic()
        with pytest.raises(_Late), deadline(0.2, _Late):
            time.sleep(5)
        assert time.monotonic() - started < 2
        assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, pytests_handler)
        signal.setitimer(signal.ITIMER_REAL, *pytests_timer)


def test_deadline_on_a_thread_stops_python_code_that_catches_exceptions():
    """Injected into the thread; the asset's own ``except Exception`` does not swallow it."""
    from prefect_assets.flows.deadline import deadline

    outcome = {}

    def body() -> None:
        started = time.monotonic()
        try:
            with deadline(0.2, _Late):
                while time.monotonic() - started < 10:
                    try:
                        sum(range(1000))
                    except Exception:  # noqa: BLE001, S110 - what a careless asset does
                        pass
        except _Late:
            outcome["stopped_after"] = time.monotonic() - started

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=30)
    assert outcome["stopped_after"] < 5


def test_deadline_leaves_a_block_that_ends_in_time_alone():
    from prefect_assets.flows.deadline import deadline

    def quick() -> int:
        with deadline(5, _Late):
            return 7

    assert quick() == 7
    results = []
    thread = threading.Thread(target=lambda: results.append(quick()))
    thread.start()
    thread.join(timeout=30)
    time.sleep(0.1)
    assert results == [7]
