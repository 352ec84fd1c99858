"""Prefect global concurrency limits for ``@asset(concurrency=...)``, prepared before a run.

An asset that declares ``concurrency="warehouse"`` holds one slot of the Prefect global
concurrency limit ``warehouse`` while it materializes (see :mod:`prefect_assets.flows.tasks`).
Limits declared in ``prefect_assets.yaml`` are created or updated on the server when a run
starts, so the YAML is the source of truth::

    concurrency_limits: {warehouse: 2}

A limit used by an asset but declared nowhere must already exist on the server (made with
``prefect gcl create``); otherwise the run stops before any asset runs, because Prefect would
otherwise let such assets run unlimited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from prefect_assets.assets.decorator import AssetDefinition
from prefect_assets.errors import AssetsError, did_you_mean


def prepare_concurrency_limits(declared: Mapping[str, int], assets: Iterable[AssetDefinition]) -> None:
    """Create or update the ``declared`` limits on the Prefect server; check the used ones exist.

    Args:
        declared: ``{name: slots}`` from the project's ``concurrency_limits:``.
        assets: the assets about to run; their ``concurrency`` names must exist afterwards.

    Raises:
        AssetsError: a declared limit is below 1, or an asset uses a limit that is neither
            declared nor on the server.

    Example:
        >>> prepare_concurrency_limits({"warehouse": 2}, [load_orders])   # doctest: +SKIP
    """
    used: dict[str, list[str]] = {}
    for definition in assets:
        if definition.concurrency is not None:
            used.setdefault(definition.concurrency, []).append(str(definition.key))
    if not declared and not used:
        return  # no server round trip for projects that use no limits
    for name, slots in declared.items():
        if not isinstance(slots, int) or slots < 1:
            raise AssetsError(
                f"concurrency_limits.{name}: {slots!r} slots would block its assets forever; use a whole number >= 1"
            )
    with get_client(sync_client=True) as client:
        for name, slots in sorted(declared.items()):
            client.upsert_global_concurrency_limit_by_name(name, slots)
        for name in sorted(set(used) - set(declared)):
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                raise AssetsError(
                    f"asset(s) {', '.join(sorted(used[name]))} use concurrency limit '{name}', which is not on the "
                    f"Prefect server{did_you_mean(name, declared)}; declare it in prefect_assets.yaml "
                    f"(concurrency_limits: {{{name}: 2}}) or create it: prefect gcl create {name} --limit 2"
                ) from None
