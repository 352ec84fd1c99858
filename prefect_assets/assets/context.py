"""What an asset function sees at run time, and what it may return.

``AssetContext`` is injected into any asset that declares a ``context`` parameter; ``Output``
lets an asset attach metadata to the value it returns. Both are plain data: the flow layer
fills in the Prefect run logger and run id, so this module never imports Prefect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prefect_assets.assets.keys import AssetKey

T = TypeVar("T")


@dataclass(frozen=True)
class Output(Generic[T]):
    """A value to store plus metadata to record with it.

    >>> Output([1, 2, 3], metadata={"source": "api"}).metadata
    {'source': 'api'}
    """

    value: T
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class AssetContext:
    """Run-time information for one asset materialization.

    Attributes:
        key: the asset being materialized.
        partition_key: the partition being materialized, or ``None``.
        run_id: the Prefect flow run id (a string), or ``None`` outside a flow.
        log: a logger; inside a flow it is Prefect's run logger, so lines show in the UI.
        config: the asset's config model instance, when the asset declares ``config=``.
    """

    key: AssetKey
    partition_key: str | None = None
    run_id: str | None = None
    log: logging.Logger | logging.LoggerAdapter = field(
        default_factory=lambda: logging.getLogger("prefect_assets.asset")
    )
    config: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def add_metadata(self, **values: Any) -> None:
        """Record extra metadata (JSON-serializable values) with this materialization."""
        self.metadata.update(values)
