"""Data and record commit as one: after a crash at any instant an asset holds either its previous
value with its previous record, or its new value with its new record.

An atomic data file is not enough: a run killed between putting the new file in place and
writing its record would leave new bytes under the old record. So a store goes, holding the
asset's lock (:mod:`~prefect_assets.io_managers.locks`):

1. **stage** the value where nobody sees it (a temporary file under ``_prefect_assets/tmp``, an
   S3 multipart upload not yet completed, bytes in memory);
2. write a **pending** record, ``_prefect_assets/pending/<key>.json``: the record the new value
   will have, written before anything visible changes (write-ahead);
3. **publish** the value in one atomic step (a rename, completing the upload, one PUT);
4. write the **record**, then delete the pending one.

Whoever next takes the lock (the asset's next store, ``status``, any command that reads records,
``wipe``, ``gc``) and finds a pending record left behind knows a writer died between 2 and 4,
and asks the IO manager whether the published file is the pending record's: if so the record is
rolled forward, otherwise (the crash came before step 3) the pending record is dropped and the
previous version stands. An IO manager that cannot tell (one of your own, without
:meth:`~prefect_assets.io_managers.base.IOManager.stored_matches`) leaves the question open:
the asset reads as stale until it is materialized again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect_assets.assets.keys import AssetKey
from prefect_assets.io_managers.base import IOManager, OutputContext, StoredOutput
from prefect_assets.io_managers.records import MaterializationRecord, RecordStore

#: Why an asset whose store was interrupted, and could not be settled, reads as stale.
INTERRUPTED = "a run was stopped while storing it, so its data may not match its record"


@dataclass(frozen=True)
class PendingCommit:
    """What a store is about to make current: the new record, when known before publishing."""

    key: str
    partition: str | None
    record: MaterializationRecord | None

    def to_json(self) -> bytes:
        # The record's own JSON is spliced in rather than decoded and encoded again.
        head = json.dumps({"key": self.key, "partition": self.partition})
        record = self.record.to_json() if self.record is not None else b"null"
        return head[:-1].encode() + b', "record": ' + record + b"}"

    @classmethod
    def from_json(cls, data: bytes) -> PendingCommit:
        """Raises ValueError for anything :meth:`to_json` did not write."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
            raise ValueError("not a pending commit")
        record = raw.get("record")
        return cls(
            key=raw["key"],
            partition=raw.get("partition"),
            record=MaterializationRecord.from_json(json.dumps(record)) if record is not None else None,
        )


def commit_output(
    io_manager: IOManager,
    records: RecordStore,
    context: OutputContext,
    value: Any,
    make_record: Callable[[StoredOutput | None], MaterializationRecord],
) -> MaterializationRecord:
    """Store ``value`` and its record as one commit (see the module docstring).

    Args:
        io_manager: stores the value.
        records: where the record, the pending record and the lock live.
        context: the asset (partition) being stored.
        value: what the asset returned.
        make_record: builds the record from what was stored.

    Raises:
        LockTimeout: another run kept storing this asset for too long.
        Exception: whatever storing raised. Until the value is published the previous version
            is untouched; after, a failed record write is settled by the next reader.
    """
    key, partition = context.key, context.partition_key
    with records.lock(key, partition) as lock:
        settle(io_manager, records, key, partition)
        if lock.broke_dead:  # otherwise the run's start swept what killed writers left
            io_manager.clean_leftovers(key, partition)
        staged = io_manager.stage_output(context, value)
        try:
            intended = make_record(staged.stored) if staged.stored is not None else None
            records.write_pending(key, partition, PendingCommit(str(key), partition, intended).to_json())
        except BaseException:
            staged.discard()
            raise
        try:
            stored = staged.publish()  # from here the new value is visible: the pending record names it
        except BaseException:
            # Published or not? A lost response cannot say; the pending record and the stored
            # bytes can. Settled now, best effort; otherwise by the next reader.
            with contextlib.suppress(Exception):
                settle(io_manager, records, key, partition)
            raise
        record = make_record(stored)
        records.write(record)
        records.delete_pending(key, partition)
        io_manager.after_commit(context, stored)
    return record


def settle(io_manager: IOManager | None, records: RecordStore, key: AssetKey, partition: str | None) -> str | None:
    """Roll an interrupted store of ``key`` forward or back; the caller holds the asset's lock.

    Returns:
        None if nothing was pending or it was settled; :data:`INTERRUPTED` if the IO manager
        cannot tell whether the new value was published (the pending record then stays, and
        the asset reads as stale until stored again).
    """
    data = records.read_pending(key, partition)
    if data is None:
        return None
    try:
        pending = PendingCommit.from_json(data)
    except ValueError:
        # Torn while being written: the writer died before publishing anything.
        records.delete_pending(key, partition)
        return None
    verdict = io_manager.stored_matches(pending.record) if (io_manager and pending.record) else None
    if verdict is None:
        return INTERRUPTED
    if verdict:
        records.write(pending.record)
    records.delete_pending(key, partition)
    return None


def settle_interrupted(
    records: RecordStore, io_manager_for: Callable[[AssetKey], IOManager | None]
) -> dict[tuple[str, str | None], str]:
    """Settle every store left pending in ``records`` by a writer that is gone.

    One listing of the pending records; each is settled under its asset's lock, skipped while
    a live writer holds it. Called before records are read (``status``, ``materialize``), so a
    crashed run is repaired by the next command, not only by the asset's next store.

    Returns:
        ``{(key, partition): INTERRUPTED}`` for stores that could not be settled.
    """
    unsettled: dict[tuple[str, str | None], str] = {}
    for key, partition in records.list_pending():
        lock = records.lock(key, partition)
        if not lock.acquire(wait=False):
            continue  # a live writer is storing it right now
        try:
            problem = settle(io_manager_for(key), records, key, partition)
        finally:
            lock.release()
        if problem is not None:
            unsettled[(str(key), partition)] = problem
    return unsettled
