"""The asset graph together with the IO managers, runner and defaults that run it, without Prefect.

``CoreDefinitions.load()`` reads ``prefect_assets.yaml``, imports the configured modules and
collects every ``@asset``; ``CoreDefinitions(assets=[...])`` builds the same thing in Python.
The flows room runs these. Users meet the subclass
:class:`~prefect_assets.definitions.Definitions`, which adds what needs the flows room
(``to_flow()``): keeping that out of this class keeps every arrow pointing one way.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from prefect_assets.assets.decorator import AssetDefinition
from prefect_assets.assets.graph import AssetGraph
from prefect_assets.assets.keys import AssetKey
from prefect_assets.assets.versions import AssetStatus
from prefect_assets.config import DefaultsConfig, IOManagerConfig, Project, ProjectConfig, load_project
from prefect_assets.errors import AssetsError, did_you_mean
from prefect_assets.io_managers import DATA_DELETED, FsspecIOManager, IOManager, MaterializationRecord, RecordStore
from prefect_assets.io_managers.commit import settle_interrupted
from prefect_assets.io_managers.formats import FORMATS
from prefect_assets.io_managers.leftovers import Leftover, sweep
from prefect_assets.runner_registry import RunnerConfig


class CoreDefinitions:
    """Assets plus everything needed to run and store them.

    Args:
        assets: the asset definitions (decorated functions).
        io_managers: ``{name: IOManager}``; ``"default"`` is added (``./data``) when missing.
        runner: which Prefect task runner to use (default: threads).
        defaults: run options for assets that do not set their own.
        name: the project name, used for flow names.
        project: the loaded project this came from, if any.

    Raises:
        AssetsError: the graph is invalid, or an asset names an IO manager that is not configured.

    Example:
        >>> from prefect_assets import asset
        >>> @asset
        ... def numbers(): return [1, 2, 3]
        >>> defs = CoreDefinitions([numbers])
        >>> [str(k) for k in defs.graph.keys]
        ['numbers']
    """

    def __init__(
        self,
        assets: Iterable[AssetDefinition],
        *,
        io_managers: Mapping[str, IOManager] | None = None,
        runner: RunnerConfig | None = None,
        defaults: DefaultsConfig | None = None,
        name: str = "assets",
        concurrency_limits: Mapping[str, int] | None = None,
        project: Project | None = None,
    ):
        self.graph = AssetGraph(assets)
        self.io_managers = dict(io_managers or {})
        self.io_managers.setdefault("default", FsspecIOManager(str(Path("data").resolve())))
        self.runner = runner or RunnerConfig()
        self.defaults = defaults or DefaultsConfig()
        self.name = name
        self.concurrency_limits = dict(concurrency_limits or {})
        self.project = project
        self._check_io_managers()

    @classmethod
    def load(cls, project: str | Path | Project | None = None) -> CoreDefinitions:
        """Load the project at ``project`` (a folder or file; default: walk up from the cwd)."""
        loaded = project if isinstance(project, Project) else load_project(project)
        config = loaded.config
        assets = list(collect_assets(import_project_modules(loaded)))
        io_managers = {name: build_io_manager(name, cfg, loaded) for name, cfg in config.io_managers.items()}
        return cls(
            assets, io_managers=io_managers, runner=config.runner, defaults=config.defaults,
            name=config.name, concurrency_limits=config.concurrency_limits, project=loaded,
        )

    def definition(self, key: AssetKey) -> AssetDefinition:
        return self.graph.nodes[key].definition

    def io_manager_for(self, key: AssetKey) -> IOManager | None:
        """The IO manager that stores ``key``, or ``None`` for ``io_manager=None`` assets."""
        name = self.definition(key).io_manager
        return None if name is None else self.io_managers[name]

    def record_store_for(self, key: AssetKey) -> RecordStore:
        """Where ``key``'s materialization records live: beside its data when the IO manager
        keeps records, else in the default IO manager's store."""
        io_manager = self.io_manager_for(key)
        store = io_manager.record_store if io_manager is not None else None
        if store is None:
            store = self.io_managers["default"].record_store
        if store is None:
            raise AssetsError("the 'default' IO manager keeps no records; configure io_managers.default with a base_uri")
        return store

    def read_records(self, keys: Iterable[AssetKey]) -> dict[AssetKey, MaterializationRecord | None]:
        """Latest records of ``keys``, reading each record store once (concurrently where it can).

        Stores that a killed run left half-done are settled first (rolled forward or back,
        see :mod:`~prefect_assets.io_managers.commit`), so what is read is always a committed
        state.
        """
        by_store = self._by_record_store(keys)
        records: dict[AssetKey, Any] = {}
        for store, store_keys in by_store.values():
            settle_interrupted(store, self._io_manager_if_known)
            records.update(store.read_many(store_keys))
        return records

    def clean_leftovers(self, keys: Iterable[AssetKey]) -> list[Leftover]:
        """Remove what killed writers left where ``keys`` are stored: temporary files,
        unfinished uploads, abandoned locks (see :func:`~prefect_assets.io_managers.leftovers.sweep`).

        A run calls it first, so a killed run's leftovers are gone after the next run, whatever
        it stores.
        """
        managers = {id(m): m for m in map(self.io_manager_for, keys) if isinstance(m, FsspecIOManager)}
        return [leftover for manager in managers.values() for leftover in sweep(manager)]

    def _by_record_store(self, keys: Iterable[AssetKey]) -> dict[int, tuple[RecordStore, list[AssetKey]]]:
        by_store: dict[int, tuple[RecordStore, list[AssetKey]]] = {}
        for key in keys:
            store = self.record_store_for(key)
            by_store.setdefault(id(store), (store, []))[1].append(key)
        return by_store

    def _io_manager_if_known(self, key: AssetKey) -> IOManager | None:
        return self.io_manager_for(key) if key in self.graph.nodes else None

    def stored_data_statuses(
        self, records: Mapping[AssetKey, MaterializationRecord | None], rehash: bool = False
    ) -> dict[AssetKey, AssetStatus]:
        """Statuses of assets whose stored data is not what their record says.

        Asks each IO manager once (:meth:`IOManager.check_stored`: one listing for the fsspec
        IO manager), so ``status`` and ``materialize --stale`` notice files deleted or replaced
        behind our back: a deleted file is ``missing (data deleted)``, a changed one
        ``stale (data does not match its record: ...)``, and one whose store was interrupted and
        cannot be settled ``stale (a run was stopped while storing it, ...)``.

        Args:
            records: the latest records, as :meth:`read_records` returns them.
            rehash: also hash every stored file (``status --verify``).
        """
        by_manager: dict[int, tuple[IOManager, list[MaterializationRecord]]] = {}
        for key, record in records.items():
            io_manager = self.io_manager_for(key)
            if record is not None and io_manager is not None:
                by_manager.setdefault(id(io_manager), (io_manager, []))[1].append(record)
        statuses: dict[AssetKey, AssetStatus] = {}
        for store, _keys in self._by_record_store(records).values():
            for (key, _partition), problem in settle_interrupted(store, self._io_manager_if_known).items():
                if AssetKey.parse(key) in records:
                    statuses[AssetKey.parse(key)] = AssetStatus("stale", problem)
        for io_manager, manager_records in by_manager.values():
            for (key, _partition), problem in io_manager.check_stored(manager_records, rehash).items():
                statuses[AssetKey.parse(key)] = (
                    AssetStatus("missing", "data deleted") if problem == DATA_DELETED
                    else AssetStatus("stale", f"data does not match its record: {problem}")
                )
        return statuses

    def check_storage(self, read: Iterable[AssetKey], written: Iterable[AssetKey] = ()) -> None:
        """Fail early, with one line, if the storage a run needs cannot be used.

        Reads one record from each distinct record store of ``read`` (a single request each),
        so wrong credentials, an unreachable endpoint or a missing bucket surface as an
        :class:`AssetsError` before a flow run starts, not as failed assets halfway through.
        For ``written`` assets, a local folder that cannot take new files is reported too.

        Raises:
            AssetsError: a record store refused the credentials, cannot be reached or does
                not exist, or a local folder that a written asset needs is not writable.
        """
        targets: dict[int, FsspecIOManager | RecordStore] = {}
        for key in written:
            io_manager = self.io_manager_for(key)
            if isinstance(io_manager, FsspecIOManager):
                targets.setdefault(id(io_manager), io_manager)
            store = self.record_store_for(key)
            targets.setdefault(id(store), store)
        for target in targets.values():
            target.check_writable()
        first_key: dict[int, tuple[RecordStore, AssetKey]] = {}
        for key in read:
            store = self.record_store_for(key)
            first_key.setdefault(id(store), (store, key))
        for store, key in first_key.values():
            store.read(key)

    def _check_io_managers(self) -> None:
        configured = sorted(self.io_managers)
        for node in self.graph.nodes.values():
            name = node.definition.io_manager
            if name is not None and name not in self.io_managers:
                raise AssetsError(
                    f"asset '{node.key}' ({node.definition.source}): io_manager '{name}' is not configured; "
                    f"add io_managers.{name} to prefect_assets.yaml (configured: {', '.join(configured)})"
                )
            fmt = node.definition.format
            if fmt is not None and isinstance(self.io_managers.get(name), FsspecIOManager) and fmt not in FORMATS:
                # Caught when the project loads, not when the asset's first value is stored.
                raise AssetsError(
                    f"asset '{node.key}' ({node.definition.source}): format={fmt!r} is not a format"
                    f"{did_you_mean(fmt, FORMATS)}; use one of: {', '.join(FORMATS)}"
                )


def import_project_modules(project: Project) -> list[ModuleType]:
    """Import the configured modules fresh from the project root.

    The root goes first on ``sys.path`` so the modules import whatever the working directory.
    Cached copies of the same module names are dropped first: a second project in the same
    process (or an edited file) must not be served the first one's module.
    """
    _put_first_on_path(str(project.root))
    importlib.invalidate_caches()
    modules: list[ModuleType] = []
    for name in project.config.modules:
        for cached in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[cached]
        modules.extend(_import_tree(name, project))
    return modules


def _put_first_on_path(root: str) -> None:
    # First, even when already present: after another project with the same module names
    # was loaded, a root further down sys.path would import that project's modules instead.
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)


def _import_tree(name: str, project: Project) -> Iterator[ModuleType]:
    module = _import_user_module(name, project)
    yield module
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=name + "."):
        yield _import_user_module(info.name, project)


def _import_user_module(name: str, project: Project) -> ModuleType:
    try:
        return importlib.import_module(name)
    except AssetsError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise AssetsError(
                f"{project.file}: modules: cannot import '{name}' from {project.root}; "
                "check the name in modules: (a module or package beside prefect_assets.yaml)"
            ) from None
        raise AssetsError(f"importing '{name}' failed: {exc}; install the missing package") from None
    except SyntaxError as exc:
        raise AssetsError(f"{exc.filename}:{exc.lineno}: syntax error in module '{name}': {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - a user's module failing at import is a user error
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else ""
        raise AssetsError(f"importing '{name}' failed{where}: {type(exc).__name__}: {exc}") from None


def collect_assets(modules: Iterable[ModuleType]) -> Iterator[AssetDefinition]:
    """Every distinct ``AssetDefinition`` at module level, in module then definition order."""
    seen: set[int] = set()
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, AssetDefinition) and id(value) not in seen:
                seen.add(id(value))
                yield value


def build_io_manager(name: str, config: IOManagerConfig, project: Project) -> IOManager:
    """Make the IO manager ``name`` from its config: a custom ``type`` or fsspec ``base_uri``."""
    if config.type is not None:
        cls = _import_io_manager_class(name, config.type, project)
        kwargs = dict(config.options)
        if config.base_uri is not None:
            kwargs["base_uri"] = project.resolve_uri(config.base_uri)
        if config.storage_options:
            kwargs["storage_options"] = config.storage_options
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise AssetsError(f"{project.file}: io_managers.{name}: {config.type}({exc}); fix its options") from None
    if config.base_uri is None:
        raise AssetsError(f"{project.file}: io_managers.{name}: needs base_uri: (any fsspec URL) or type: module:Class")
    try:
        return FsspecIOManager(
            project.resolve_uri(config.base_uri),
            storage_options=config.storage_options,
            allow_pickle=config.allow_pickle,
            format_options=config.options,  # keyed by format name: {parquet: {compression: zstd}}
            name=name,
        )
    except AssetsError as exc:
        message = str(exc).removeprefix(f"io_managers.{name}: ")
        raise AssetsError(f"{project.file}: io_managers.{name}: {message}") from None


def _import_io_manager_class(name: str, target: str, project: Project) -> type[IOManager]:
    module_name, _, attr = target.partition(":")
    where = f"{project.file}: io_managers.{name}.type"
    if not attr:
        raise AssetsError(f"{where}: '{target}' should be written 'module:Class'")
    _put_first_on_path(str(project.root))
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise AssetsError(f"{where}: cannot import '{target}' ({exc}); check the module and class name") from None
    if not (isinstance(cls, type) and issubclass(cls, IOManager)):
        raise AssetsError(f"{where}: '{target}' is not a subclass of prefect_assets.IOManager")
    return cls


__all__ = ["CoreDefinitions", "ProjectConfig"]
