"""How an asset definition crosses a process boundary: by reference to its module.

Process pools, Dask and Ray pickle a task's arguments, the :class:`AssetDefinition` among them.
The decorated module attribute *is* the definition, so pickling its function by reference
fails ("not the same object"); instead a module-level asset travels as (module, name) and is
imported again on the other side. The directory the module was imported from travels too: a
Dask or Ray worker started elsewhere (another working directory, no project on ``sys.path``)
then imports the project's modules without any worker plugin or setup. ``__main__`` differs in
every process, so assets defined there go by value (cloudpickle, which Prefect, Dask and Ray
all use, pickles their functions whole).

This is the runners' business, not the asset model's: the model stays free of ``sys.path``
and imports. Importing :mod:`prefect_assets.flows` registers :func:`reduce_asset` with
:mod:`copyreg`, which ``pickle``, cloudpickle and Ray's serializer all consult.
"""

from __future__ import annotations

import copyreg
import importlib
import sys
import threading
from pathlib import Path
from typing import Any

from prefect_assets.assets.decorator import AssetDefinition

#: Serializes sys.path and sys.modules changes between threads of one worker process.
_IMPORT_LOCK = threading.RLock()


def reduce_asset(definition: AssetDefinition) -> tuple[Any, ...]:
    """Pickle ``definition`` as an import of its module attribute, or by value if it has none."""
    module, qualname = definition.fn.__module__, definition.fn.__qualname__
    if module != "__main__":
        try:
            found = import_object(module, qualname)
        except Exception:  # noqa: BLE001 - not importable: fall back to pickling by value
            found = None
        if found is definition:
            return (import_object, (module, qualname, import_root(module)))
    return definition.__reduce_ex__(4)


def import_object(module: str, qualname: str, root: str | None = None) -> Any:
    """Import ``module`` (from ``root`` when given) and return ``qualname`` in it.

    A long-lived worker may serve several projects whose modules share a name (or an earlier
    copy of this one from another directory): a cached module that was not loaded from
    ``root`` is dropped and imported again from there, so the worker runs this project's code.
    """
    with _IMPORT_LOCK:
        if root is not None:
            if root not in sys.path:
                sys.path.insert(0, root)
            cached_root = import_root(module)
            if cached_root is not None and cached_root != root:
                sys.path.remove(root)
                sys.path.insert(0, root)
                top = module.split(".")[0]
                for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                    del sys.modules[name]
                importlib.invalidate_caches()
        obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def import_root(module: str) -> str | None:
    """The ``sys.path`` entry ``module`` was imported from: its file, minus its dotted name."""
    loaded = sys.modules.get(module)
    file = getattr(loaded, "__file__", None)
    if file is None:
        return None
    path = Path(file).resolve().parent
    depth = module.count(".") + (1 if Path(file).name == "__init__.py" else 0)
    for _ in range(depth):
        path = path.parent
    return str(path)


copyreg.pickle(AssetDefinition, reduce_asset)
