"""One asset's materialization: load inputs, call the function, store, record.

:func:`materialize_asset` is the plain function that does the work; :func:`asset_task` wraps
it in a Prefect task configured from the asset's options. Everything the task receives is an
:class:`AssetRun`, which pickles, so the same task runs on threads, processes, Dask or Ray.

Two run options are enforced here rather than by Prefect, so they mean the same on every
runner:

- ``concurrency="name"``: the whole materialization (load, compute, store) holds one slot of
  the Prefect global concurrency limit ``name``; waiting for the slot does not count toward
  the timeout.
- ``timeout_seconds``: a deadline for loading the inputs and computing the value. Storing is
  never cut short, so a timed-out asset leaves the previous materialization intact. How the
  deadline is enforced depends on where the task runs (see :func:`_compute_with_deadline`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import prefect.runtime
from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.tasks import MaterializingTask

from prefect_assets.assets.context import AssetContext
from prefect_assets.assets.keys import AssetKey
from prefect_assets.config import DefaultsConfig
from prefect_assets.flows.compute import (
    AssetRun,
    AssetTimeoutError,
    Computed,
    compute,
    compute_in_subprocess,
)
from prefect_assets.io_managers import IOManager, MaterializationRecord, OutputContext, StoredOutput
from prefect_assets.io_managers.commit import commit_output

__all__ = [
    "AssetRun", "AssetTimeoutError", "MaterializedAsset", "Sealed", "asset_task", "asset_uri", "materialize_asset",
]


def materialize_asset(run: AssetRun, upstream_records: Mapping[str, MaterializationRecord | None]) -> MaterializationRecord:
    """Load the inputs, call the asset function, then store the value and its record as one.

    Raises:
        AssetTimeoutError: loading and computing took longer than ``run.timeout_seconds``.
    """
    definition = run.node.definition
    context = AssetContext(
        key=run.key, partition_key=run.partition_key, run_id=_flow_run_id(), log=_logger(), config=run.config,
    )
    with _concurrency_slot(definition.concurrency):
        started = time.perf_counter()
        computed = _compute_with_deadline(run, upstream_records, context)
        return _store(run, upstream_records, computed, context, started)


def _store(
    run: AssetRun,
    upstream_records: Mapping[str, MaterializationRecord | None],
    computed: Computed,
    context: AssetContext,
    started: float,
) -> MaterializationRecord:
    """Store the value and its record as one commit (see :mod:`prefect_assets.io_managers.commit`)."""
    definition = run.node.definition
    value, metadata = computed.value, computed.metadata
    timestamp = datetime.now(timezone.utc).isoformat()

    def make_record(stored: StoredOutput | None) -> MaterializationRecord:
        return MaterializationRecord(
            key=str(run.key),
            partition=run.partition_key,
            run_id=context.run_id,
            timestamp=timestamp,
            code_version=definition.code_version,
            input_versions={str(k): _data_version(upstream_records.get(str(k))) for k in sorted(run.node.upstream)},
            # An asset that stores nothing has no bytes to hash: each materialization is a new version.
            data_version=stored.data_version if stored else _unstored_version(run.key, timestamp),
            format=stored.format if stored else None,
            path=stored.path if stored else None,
            bytes=stored.bytes if stored else None,
            rows=stored.rows if stored else None,
            metadata=metadata,
            duration_seconds=round(time.perf_counter() - started, 6),
            identity=stored.identity if stored else None,
        )

    if run.io_manager is None:
        if value is not None:
            context.log.warning("asset %s has io_manager=None but returned a value; the value was not stored", run.key)
        record = make_record(None)
        run.record_store.write(record)
        return record
    out_context = OutputContext(run.key, run.partition_key, definition.format, metadata)
    return commit_output(run.io_manager, run.record_store, out_context, value, make_record)


def asset_task(run: AssetRun, defaults: DefaultsConfig, upstream_uris: list[str]) -> MaterializingTask:
    """The Prefect task for one asset: named after its key, with its retries and tags.

    Prefect's own result persistence and caching stay off: our IO managers store the data, and
    a cached task would skip writing it. Lineage is given explicitly (``asset_deps``) because
    Prefect infers none under the process pool. The timeout is not Prefect's: the task body
    enforces ``run.timeout_seconds`` itself, in a way that works on every runner.
    """
    definition = run.node.definition
    # Only the user's own tags: Prefect checks tag concurrency limits on the server for every
    # tag of every task run (a lease round trip each), so a tag we added to every asset would
    # cost every asset a round trip.
    tags = {f"{k}:{v}" for k, v in definition.tags.items()}
    # Built directly rather than by ``with_options`` on a base task, which inspects
    # ``Task.__init__``'s signature and copies every option on each call, for every asset, on the
    # flow's scheduling thread.
    return MaterializingTask(
        fn=_TASK_FN,
        name=str(run.key),
        task_run_name=str(run.key),
        description=definition.description or f"Materialize asset {run.key}",
        assets=[asset_uri(run.io_manager, run.key, run.project_name)],
        asset_deps=upstream_uris,
        retries=definition.retries if definition.retries is not None else defaults.retries,
        retry_delay_seconds=(
            definition.retry_delay_seconds if definition.retry_delay_seconds is not None
            else defaults.retry_delay_seconds
        ),
        tags=tags,
        cache_policy=NO_CACHE,
        persist_result=False,
        log_prints=True,
    )


@contextmanager
def _concurrency_slot(name: str | None) -> Iterator[None]:
    """Hold one slot of the Prefect global concurrency limit ``name`` (if any) inside the block.

    ``strict``: the flow checked before the run that every limit exists, so a missing one here
    was deleted meanwhile and must not turn into running unlimited.
    """
    if name is None:
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(name, occupy=1, strict=True):
        yield


def _compute_with_deadline(
    run: AssetRun, upstream_records: Mapping[str, MaterializationRecord | None], context: AssetContext
) -> Computed:
    """:func:`compute`, stopped after ``run.timeout_seconds``, by the means that bite where it runs.

    - On a process's main thread (process pool, Ray): ``SIGALRM`` interrupts even ``sleep``
      and blocking I/O (:mod:`~prefect_assets.flows.deadline`, as Prefect's own timeout).
    - On a thread of a worker process (Dask): no signal reaches a thread, so the asset runs in
      a child process that is killed at the deadline.
    - On a thread of the flow's own process (the thread runner): an exception is injected
      into the thread at the deadline. It stops Python code, but a blocking call (``sleep``,
      I/O, C code) finishes first: Python cannot interrupt a thread. The error says so.
    """
    seconds = run.timeout_seconds
    if seconds is None:
        return compute(run, upstream_records, context)
    on_main_thread = threading.current_thread() is threading.main_thread()
    if not on_main_thread and os.getpid() != run.origin_pid:
        return compute_in_subprocess(run, upstream_records, context, seconds)
    from prefect_assets.flows.deadline import deadline

    started = time.monotonic()
    try:
        with deadline(seconds, _Deadline):
            return compute(run, upstream_records, context)
    except _Deadline as exc:
        ran = time.monotonic() - started
        if on_main_thread or ran < seconds + 0.5:  # stopped on time
            message = f"asset '{run.key}' timed out after {seconds:g} s (timeout_seconds) and was stopped"
        else:
            message = (
                f"asset '{run.key}' timed out: it ran {ran:.1f} s, over timeout_seconds={seconds:g}. The thread "
                "runner cannot interrupt a blocking call (sleep, I/O, C code), so the asset stopped only when "
                "that call returned; use runner process, dask or ray to stop it on time"
            )
        raise AssetTimeoutError(message) from exc


class _Deadline(TimeoutError):
    """Raised by our timeout scope only, so a ``TimeoutError`` of the asset's own is not
    mistaken for the deadline."""


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


class Sealed:
    """A task argument that Prefect and every task runner pass through untouched.

    Prefect walks task arguments looking for futures, and Dask rebuilds tuples, lists and
    dataclasses it finds in them: Prefect's own ``quote`` (a tuple subclass) arrives on a Dask
    worker as a plain 1-tuple. Neither looks inside an ordinary object, so the asset's
    :class:`AssetRun` and records travel in this one and are unwrapped by the task.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __reduce__(self):
        return (Sealed, (self.value,))

    def __repr__(self) -> str:
        return f"Sealed({type(self.value).__name__})"


class _AssetTaskFn:
    """The function behind every asset's Prefect task: unwrap the arguments, materialize.

    A callable object rather than a function on purpose: Prefect's ``Task()`` calls
    ``inspect.getsource`` on its function at every construction, which stats and tokenizes the
    source file, and hashes the function's code for the task key; for an object without a
    ``__qualname__`` both give up at once (the task key is then the class's qualified name).
    Nothing needs the source: asset tasks never use Prefect's cache (their code version is
    ours), and every task is named after its asset.
    """

    def __call__(self, run: Sealed, upstream_records: Sealed) -> MaterializedAsset:
        attempt = prefect.runtime.task_run.run_count or 1
        try:
            record = materialize_asset(run.value, upstream_records.value)
        except Exception as exc:
            # The attempt travels on the exception (its attributes pickle with it across
            # processes), so the run summary says how many attempts a failure used.
            with contextlib.suppress(AttributeError, TypeError):
                exc.prefect_assets_attempt = attempt
            raise
        return MaterializedAsset(record, attempt)


@dataclass(frozen=True)
class MaterializedAsset:
    """What an asset's task returns: the record it wrote, and the attempt that wrote it
    (``1`` unless earlier attempts failed and Prefect retried)."""

    record: MaterializationRecord
    attempts: int


_TASK_FN = _AssetTaskFn()


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
