"""``Definitions``: a project's assets, storage and runner, and the Prefect flow that runs them.

Everything but the flow is :class:`~prefect_assets.core_definitions.CoreDefinitions`, which the
flows room runs; this subclass sits above that room and adds :meth:`Definitions.to_flow`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect_assets.core_definitions import CoreDefinitions

if TYPE_CHECKING:
    from prefect import Flow


class Definitions(CoreDefinitions):
    """Assets plus everything needed to run and store them (see :class:`CoreDefinitions`).

    Example:
        >>> from prefect_assets import asset
        >>> @asset
        ... def numbers(): return [1, 2, 3]
        >>> Definitions([numbers]).to_flow()   # doctest: +SKIP
        <prefect.flows.Flow object at ...>
    """

    def to_flow(self, select: str | None = None, **options: Any) -> Flow:
        """The Prefect flow that materializes ``select``: deployable, servable, callable.

        ``options`` are the run options (:class:`~prefect_assets.flows.options.RunOptions`);
        a bad one raises :class:`~prefect_assets.errors.AssetsError` now, before any run.
        See :func:`prefect_assets.flows.build.build_flow`.
        """
        # Imported here so that loading a project (list, status, graph) does not import Prefect.
        from prefect_assets.flows.build import build_flow

        return build_flow(self, select, **options)


__all__ = ["Definitions"]
