"""prefect-assets: software-defined assets on Prefect.

Decorate functions with :func:`asset`; parameter names are the upstream assets. Run a
selection with :func:`materialize` (in-process, through a real Prefect flow run) or with the
``prefect-assets`` command.

Example:
    >>> from prefect_assets import asset
    >>> @asset
    ... def numbers() -> list:
    ...     return [1, 2, 3]
    >>> @asset
    ... def total(numbers: list) -> int:
    ...     return sum(numbers)
"""

from __future__ import annotations

from typing import Any

from prefect_assets.assets.context import AssetContext, Output
from prefect_assets.assets.decorator import AssetDefinition, asset
from prefect_assets.assets.keys import AssetKey
from prefect_assets.definitions import Definitions
from prefect_assets.errors import AssetsError
from prefect_assets.io_managers import IOManager

__all__ = [
    "AssetContext",
    "AssetDefinition",
    "AssetKey",
    "AssetsError",
    "Definitions",
    "IOManager",
    "Output",
    "asset",
    "materialize",
]


def __getattr__(name: str) -> Any:
    # ``materialize`` imports Prefect, which is slow to import: load it on first use so
    # that defining assets, listing them and reading status stay fast.
    if name == "materialize":
        from prefect_assets.flows.build import materialize

        return materialize
    raise AttributeError(f"module 'prefect_assets' has no attribute {name!r}")
