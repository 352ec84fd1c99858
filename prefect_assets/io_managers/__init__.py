"""Storage for asset values: the IO manager contract, the fsspec implementation, records.

No Prefect import here: storage works the same under any runner, and in plain Python.

- ``base``: the two-method :class:`IOManager` contract and the contexts it receives;
- ``fsspec``: :class:`FsspecIOManager`, files on any fsspec URL (local, S3, GCS, ...);
- ``formats``: how values become Parquet, JSON, raw bytes or pickle and back;
- ``storage``: atomic, hashed, streaming writes and whole-object reads per backend;
- ``exact``: deletes that never expand a glob, and a write probe that writes nothing;
- ``records``: :class:`MaterializationRecord` and where records are kept;
- ``secrets``: credentials out of every message; backend errors sorted into one clear line.

See ``docs/storage.md``.
"""

from __future__ import annotations

from prefect_assets.io_managers.base import DATA_DELETED, InputContext, IOManager, OutputContext, StoredOutput
from prefect_assets.io_managers.fsspec import FsspecIOManager
from prefect_assets.io_managers.records import MaterializationRecord, RecordStore

__all__ = [
    "DATA_DELETED",
    "FsspecIOManager",
    "IOManager",
    "InputContext",
    "MaterializationRecord",
    "OutputContext",
    "RecordStore",
    "StoredOutput",
]
