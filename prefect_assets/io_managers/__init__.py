"""Storage for asset values: the IO manager contract, the fsspec implementation, records.

No Prefect import here: storage works the same under any runner, and in plain Python.
"""

from __future__ import annotations

from prefect_assets.io_managers.base import InputContext, IOManager, OutputContext, StoredOutput
from prefect_assets.io_managers.fsspec import FsspecIOManager
from prefect_assets.io_managers.records import MaterializationRecord, RecordStore

__all__ = [
    "IOManager",
    "FsspecIOManager",
    "OutputContext",
    "InputContext",
    "StoredOutput",
    "MaterializationRecord",
    "RecordStore",
]
