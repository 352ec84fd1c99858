"""The IO manager contract: two methods to store and load an asset's value.

The framework calls :meth:`IOManager.handle_output` with what an asset returned and
:meth:`IOManager.load_input` when a downstream asset needs it. Everything else (records,
versions, staleness) is built on the :class:`StoredOutput` that ``handle_output`` returns.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect_assets.assets.keys import AssetKey
from prefect_assets.io_managers.records import MaterializationRecord, RecordStore


@dataclass(frozen=True)
class OutputContext:
    """What :meth:`IOManager.handle_output` knows about the value it stores.

    Attributes:
        key: the asset being stored.
        partition_key: its partition, or None.
        format: the asset's ``format=`` override name, or None to choose by type.
        metadata: the asset's static metadata.
    """

    key: AssetKey
    partition_key: str | None = None
    format: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputContext:
    """What :meth:`IOManager.load_input` knows about the value it loads.

    Attributes:
        key: the upstream asset to load.
        partition_key: its partition, or None.
        record: the upstream's latest record, if any: it says where the data is and its format.
    """

    key: AssetKey
    partition_key: str | None = None
    record: MaterializationRecord | None = None


@dataclass(frozen=True)
class StoredOutput:
    """Where and how :meth:`IOManager.handle_output` stored a value.

    Attributes:
        path: where the value is, *relative to the IO manager's own location* (for the fsspec
            IO manager, its ``base_uri``): ``raw/orders.parquet``, ``raw/orders/2026-01-05.json``.
            The record keeps this, never an absolute location, so a project that is copied or
            moved, or a bucket read from another machine, finds its own data.
        format: storage format name.
        data_version: content hash of what was stored; downstream assets become stale when it
            changes. Use :func:`prefect_assets.assets.versions.content_version` on the bytes.
        bytes: stored size.
        rows: row count where it means something, else None.
        identity: how the stored file is known in a listing (see
            :attr:`MaterializationRecord.identity`), or None.
    """

    path: str
    format: str
    data_version: str
    bytes: int
    rows: int | None
    identity: dict | None = None


class StagedOutput:
    """A value written where nobody sees it yet: :meth:`publish` makes it current in one step.

    The framework writes the record the value will have (a pending record) between staging and
    publishing, so a crash in between can be settled (see :mod:`~prefect_assets.io_managers.commit`).
    This default stages nothing and does all the work in :meth:`publish`, by calling
    :meth:`IOManager.handle_output`: right for any IO manager, but then the record is not known
    before publishing, and an interrupted store can only be reported, not settled.

    Attributes:
        stored: what the record will say, when known before publishing; else None.
    """

    stored: StoredOutput | None = None

    def __init__(self, io_manager: IOManager, context: OutputContext, obj: Any) -> None:
        self._store = lambda: io_manager.handle_output(context, obj)

    def publish(self) -> StoredOutput:
        """Make the value current; returns where and how it is stored."""
        return self._store()

    def discard(self) -> None:
        """Drop the staged value, leaving the current one. Never raises."""


#: What :meth:`IOManager.check_stored` says about one record's data: ``"deleted"``, or a line
#: describing how the stored data differs from the record.
DATA_DELETED = "deleted"


class IOManager(abc.ABC):
    """Stores asset values and loads them back. Subclass it to store assets anywhere.

    Only :meth:`handle_output` and :meth:`load_input` are required. Override :meth:`delete` to
    support ``prefect-assets wipe``, :meth:`check_stored` to let ``status`` notice data removed
    behind your back, and :attr:`record_store` to keep materialization records somewhere of your
    own (by default they go to the default IO manager's store).

    Example: an IO manager that keeps CSV text in a dict::

        import csv, io
        from prefect_assets.assets.versions import content_version
        from prefect_assets.io_managers import IOManager, StoredOutput

        class CsvDictIOManager(IOManager):
            def __init__(self):
                self.files = {}

            def handle_output(self, context, obj):  # obj: a list of dicts
                buf = io.StringIO()
                writer = csv.DictWriter(buf, fieldnames=list(obj[0]))
                writer.writeheader()
                writer.writerows(obj)
                data = buf.getvalue().encode()
                self.files[(context.key, context.partition_key)] = data
                return StoredOutput(path=f"{context.key}.csv", format="csv",
                                    data_version=content_version(data), bytes=len(data), rows=len(obj))

            def load_input(self, context):
                data = self.files[(context.key, context.partition_key)]
                return list(csv.DictReader(io.StringIO(data.decode())))

    Instances cross process boundaries under the process, Dask and Ray runners, so they must
    pickle; hold connection objects lazily or rebuild them in ``__setstate__``. Keep
    credentials out of exception messages: they end up in Prefect's logs and the run summary.
    ``docs/storage.md`` walks through a complete one (tables in SQLite), registered in
    ``prefect_assets.yaml`` as ``type: module:Class``.
    """

    @abc.abstractmethod
    def handle_output(self, context: OutputContext, obj: Any) -> StoredOutput:
        """Store ``obj`` as asset ``context.key`` (partition ``context.partition_key``).

        Must be atomic: if it raises, the previously stored value stays readable.
        """

    @abc.abstractmethod
    def load_input(self, context: InputContext) -> Any:
        """Load the stored value of asset ``context.key`` (partition ``context.partition_key``).

        Raises:
            AssetsError: the asset has not been materialized.
        """

    def delete(self, key: AssetKey, partition_key: str | None = None) -> None:
        """Remove the stored value (and record) of ``key``/``partition_key``.

        Raises:
            NotImplementedError: unless a subclass implements it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot delete stored assets: implement "
            f"delete(key, partition_key) to support `prefect-assets wipe`"
        )

    def stage_output(self, context: OutputContext, obj: Any) -> StagedOutput:
        """Write ``obj`` where nobody sees it yet; the framework then publishes it.

        Override it, with :meth:`stored_matches`, to let the framework settle a store that a
        crash interrupted (as the fsspec IO manager does). The default defers all the work to
        :meth:`handle_output` at publish time.
        """
        return StagedOutput(self, context, obj)

    def stored_matches(self, record: MaterializationRecord) -> bool | None:
        """Whether the value stored now is the one ``record`` describes; None if it cannot tell.

        Asked after a crash, about the record a store was about to write: True rolls the
        record forward, False keeps the previous one.
        """
        return None

    def clean_leftovers(self, key: AssetKey, partition_key: str | None = None) -> None:
        """Remove what killed writers left behind for ``key`` (temporary files, unfinished uploads).

        Called while holding the asset's lock, so no live writer of it exists: when the lock was
        taken over from a writer that died holding it, and when the asset is wiped.
        """

    def after_commit(self, context: OutputContext, stored: StoredOutput) -> None:
        """Called once the value and its record are both current (to drop superseded files)."""

    @property
    def record_store(self) -> RecordStore | None:
        """Where this IO manager keeps materialization records; None means the default's store."""
        return None

    def check_stored(
        self, records: Iterable[MaterializationRecord], rehash: bool = False
    ) -> dict[tuple[str, str | None], str]:
        """Compare what is stored with what ``records`` say, for ``prefect-assets status``.

        Override it so that ``status`` and ``materialize --stale`` notice data deleted or
        replaced behind the framework's back. The base class cannot look into your storage and
        reports nothing.

        Args:
            records: latest records of assets this IO manager stores.
            rehash: also hash the stored bytes and compare them with each record's data version
                (``status --verify``); otherwise only presence and size are checked.

        Returns:
            ``{(record.key, record.partition): problem}`` for every record whose data is not as
            recorded: :data:`DATA_DELETED`, or one line saying what differs.
        """
        return {}
