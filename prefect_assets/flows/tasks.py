"""One asset's materialization: load inputs, call the function, store, record.

:func:`materialize_asset` is the plain function that does the work; :func:`asset_task` wraps
it in a Prefect task configured from the asset's options. Everything the task receives is an
:class:`AssetRun`, which pickles, so the same task runs on threads, processes, Dask or Ray.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import prefect.runtime
from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.tasks import MaterializingTask

from prefect_assets.assets.context import AssetContext, Output
from prefect_assets.assets.graph import AssetNode
from prefect_assets.assets.keys import AssetKey
from prefect_assets.config import DefaultsConfig
from prefect_assets.io_managers import (
    InputContext,
    IOManager,
    MaterializationRecord,
    OutputContext,
    RecordStore,
)


@dataclass(frozen=True)
class AssetRun:
    """Everything one asset's task needs; plain data that pickles across processes.

    Attributes:
        node: the asset and its resolved inputs.
        io_manager: where its value is stored (``None``: the asset stores nothing itself).
        record_store: where its materialization record is written.
        input_io_managers: ``{upstream key: IOManager}`` for the inputs it loads.
        partition_key: the partition being materialized, if any.
        config: the asset's config model instance, if it declares one.
        project_name: used for the Prefect asset URI of assets that store nothing.
    """

    node: AssetNode
    io_manager: IOManager | None
    record_store: RecordStore
    input_io_managers: Mapping[AssetKey, IOManager] = field(default_factory=dict)
    partition_key: str | None = None
    config: Any = None
    project_name: str = "assets"

    @property
    def key(self) -> AssetKey:
        return self.node.key


def materialize_asset(run: AssetRun, upstream_records: Mapping[str, MaterializationRecord | None]) -> MaterializationRecord:
    """Load the inputs, call the asset function, store the value, then write the record.

    The record is written only after the data, so a record always describes bytes that exist.
    """
    started = time.perf_counter()
    definition = run.node.definition
    context = AssetContext(
        key=run.key, partition_key=run.partition_key, run_id=_flow_run_id(), log=_logger(), config=run.config,
    )
    kwargs: dict[str, Any] = {}
    for param, up in run.node.inputs.items():
        up_context = InputContext(up, run.partition_key, upstream_records.get(str(up)))
        kwargs[param] = run.input_io_managers[up].load_input(up_context)
    if definition.wants_context:
        kwargs["context"] = context
    if definition.config_schema is not None:
        kwargs["config"] = run.config

    value = definition.fn(**kwargs)
    metadata = {**definition.metadata, **context.metadata}
    if isinstance(value, Output):
        metadata.update(value.metadata)
        value = value.value

    timestamp = datetime.now(timezone.utc).isoformat()
    stored = None
    if run.io_manager is not None:
        out_context = OutputContext(run.key, run.partition_key, definition.format, metadata)
        stored = run.io_manager.handle_output(out_context, value)
    elif value is not None:
        context.log.warning("asset %s has io_manager=None but returned a value; the value was not stored", run.key)
    record = MaterializationRecord(
        key=str(run.key),
        partition=run.partition_key,
        run_id=context.run_id,
        timestamp=timestamp,
        code_version=definition.code_version,
        input_versions={str(k): _data_version(upstream_records.get(str(k))) for k in sorted(run.node.upstream)},
        # An asset that stores nothing has no bytes to hash: each materialization is a new version.
        data_version=stored.data_version if stored else _unstored_version(run.key, timestamp),
        format=stored.format if stored else None,
        uri=stored.uri if stored else None,
        bytes=stored.bytes if stored else None,
        rows=stored.rows if stored else None,
        metadata=metadata,
        duration_seconds=round(time.perf_counter() - started, 6),
    )
    run.record_store.write(record)
    return record


def asset_task(run: AssetRun, defaults: DefaultsConfig, upstream_uris: list[str]) -> MaterializingTask:
    """The Prefect task for one asset: named after its key, with its retries, timeout and tags.

    Prefect's own result persistence and caching stay off: our IO managers store the data, and
    a cached task would skip writing it. Lineage is given explicitly (``asset_deps``) because
    Prefect infers none under the process pool.
    """
    definition = run.node.definition
    tags = {f"{k}:{v}" for k, v in definition.tags.items()} | {f"group:{definition.group}"}
    return _BASE_TASK.with_options(
        name=str(run.key),
        task_run_name=str(run.key),
        assets=[asset_uri(run.io_manager, run.key, run.project_name)],
        asset_deps=upstream_uris,
        retries=definition.retries if definition.retries is not None else defaults.retries,
        retry_delay_seconds=(
            definition.retry_delay_seconds if definition.retry_delay_seconds is not None
            else defaults.retry_delay_seconds
        ),
        timeout_seconds=definition.timeout_seconds if definition.timeout_seconds is not None else defaults.timeout_seconds,
        tags=tags,
    )


def asset_uri(io_manager: IOManager | None, key: AssetKey, project_name: str) -> str:
    """The Prefect asset key of an asset: its storage location without the format extension.

    Assets that store nothing (or whose IO manager has no ``base_uri``) get
    ``assets://<project>/<key>``. Prefect refuses spaces, ``%``, ``?`` and a few more
    characters in asset keys, so those become ``_``.
    """
    base = getattr(io_manager, "base_uri", None)
    if base is None:
        uri = f"assets://{project_name}/{key}"
    else:
        uri = ("" if "://" in base else "file://") + base.rstrip("/") + f"/{key}"
    return _PREFECT_RESTRICTED.sub("_", uri)


_PREFECT_RESTRICTED = re.compile(r"[\s#?&%\"'<>\[\]{}|\\^`]")

def _asset_task_fn(run: AssetRun, upstream_records: Mapping[str, MaterializationRecord | None]) -> MaterializationRecord:
    return materialize_asset(run, upstream_records)


# Prefect's Task() reads the function's source with inspect.getsource on every construction
# (with_options included): a two-line wrapper keeps that per-asset cost small.
_BASE_TASK = MaterializingTask(
    fn=_asset_task_fn,
    assets=["assets://placeholder"],
    cache_policy=NO_CACHE,
    persist_result=False,
    log_prints=True,
)


def _data_version(record: MaterializationRecord | None) -> str | None:
    return record.data_version if record is not None else None


def _unstored_version(key: AssetKey, timestamp: str) -> str:
    return hashlib.sha256(f"{key}@{timestamp}".encode()).hexdigest()[:16]


def _flow_run_id() -> str | None:
    # prefect.runtime works in a task on any runner (a process-pool worker has no FlowRunContext).
    return prefect.runtime.flow_run.id


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a Prefect run, e.g. in a unit test
        return logging.getLogger("prefect_assets.asset")
