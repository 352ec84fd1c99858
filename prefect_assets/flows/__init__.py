"""Graph → Prefect flow: the only place where Prefect runs assets."""

from __future__ import annotations

from typing import Any

from prefect_assets.flows import asset_pickling  # noqa: F401 - registers how assets cross processes


def __getattr__(name: str) -> Any:
    # ``prefect_assets.flows:materialize_assets`` is the deployable flow (see flows/entry.py);
    # loaded on first use so that importing one flows module does not import them all.
    if name == "materialize_assets":
        from prefect_assets.flows.entry import materialize_assets

        return materialize_assets
    raise AttributeError(f"module 'prefect_assets.flows' has no attribute {name!r}")
