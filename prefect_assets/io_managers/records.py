"""Materialization records: what was stored, from which code and which inputs.

A record is a small JSON file per asset (and per partition) holding the *latest*
materialization only; staleness compares it with the current code and the upstream records.
Layout under the store's root::

    <root>/<key parts...>.json                  unpartitioned
    <root>/<key parts...>/<partition>.json      partitioned

The store also keeps, in its *work directory* (``_prefect_assets/`` beside ``records/`` for the
fsspec IO manager), what a store in progress needs (see :mod:`~prefect_assets.io_managers.commit`)::

    <work>/pending/<key...>[/<partition>].json     the record a store in flight is about to write
    <work>/locks/<key...>[/<partition>].lock       one writer per asset at a time
    <work>/tmp/<area>/<key...>[...].<hex>.tmp      temporary files, removed by the next store

>>> import fsspec, tempfile
>>> from prefect_assets.assets.keys import AssetKey, check_partition_key
>>> store = RecordStore(fsspec.filesystem("file"), tempfile.mkdtemp())
>>> record = MaterializationRecord(
...     key="reports/daily", partition=None, run_id=None, timestamp="2024-01-01T00:00:00+00:00",
...     code_version="abc", input_versions={}, data_version="0123456789abcdef", format="json",
...     path="reports/daily.json", bytes=2, rows=None, metadata={})
>>> store.write(record)
>>> store.read(AssetKey.parse("reports/daily")) == record
True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fsspec import AbstractFileSystem

from prefect_assets.assets.keys import AssetKey, check_partition_key
from prefect_assets.errors import AssetsError
from prefect_assets.io_managers.exact import has_glob, local_write_problem, remove_temporaries
from prefect_assets.io_managers.locks import AssetLock, asset_lock
from prefect_assets.io_managers.secrets import Redactor, storage_error
from prefect_assets.io_managers.storage import is_local, write_atomic

#: Reading "from byte 0 to the end" instead of "the file": the same bytes on every backend, but
#: s3fs then sends one GET. For a plain ``cat_file`` it first asks for the size (a HEAD, to
#: split large objects into concurrent ranges), which doubles the requests behind ``status``.
_WHOLE_FILE = {"start": 0}


@dataclass(frozen=True)
class MaterializationRecord:
    """The latest materialization of one asset (partition).

    Attributes:
        key: the asset key in written form, ``"reports/daily"``.
        partition: the partition key, or None for an unpartitioned asset.
        run_id: the Prefect flow run that produced it, when known.
        timestamp: when it finished, ISO-8601 in UTC.
        code_version: the asset's code version at the time.
        input_versions: upstream key (written form) → the data version that was read.
        data_version: hash of the stored bytes; None when the asset stores nothing itself.
        format: storage format name (``parquet``, ``json``, ...), or None.
        path: where the data is, relative to its IO manager's location (``raw/orders.parquet``
            under the ``base_uri``), or None when the asset stores nothing. Never absolute, so
            records stay true when the project is copied or moved, or the bucket is read
            from another machine.
        bytes: stored size, or None.
        rows: row count where it means something (tables, lists), else None.
        metadata: user metadata (``context.add_metadata``, ``Output(metadata=...)``).
        duration_seconds: how long the asset function and the write took.
        identity: how the stored file is known in a listing, as written (local disk: inode and
            modification time; S3: ETag), so ``status`` notices a file replaced behind our back
            without reading it. None when the backend offers nothing cheap.
    """

    key: str
    partition: str | None
    run_id: str | None
    timestamp: str
    code_version: str
    input_versions: dict[str, str]
    data_version: str | None
    format: str | None
    path: str | None
    bytes: int | None
    rows: int | None
    metadata: dict = field(default_factory=dict)
    duration_seconds: float | None = None
    identity: dict | None = None

    def to_json(self) -> bytes:
        """Serialize as UTF-8 JSON. Metadata values JSON cannot hold are written as strings.

        One line, no indentation: ``json`` then uses its C encoder, much faster than
        the pure-Python one that indenting needs, and every asset writes a record
        (``jq . record.json`` pretty-prints one).
        """
        fields = {name: getattr(self, name) for name in _RECORD_FIELD_ORDER}
        return json.dumps(fields, default=_plain, ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> MaterializationRecord:
        """Parse what :meth:`to_json` wrote. Fields this version does not know are ignored.

        Raises:
            ValueError: not JSON, or required fields missing.
        """
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        # Ignoring unknown fields lets an older prefect-assets read records a newer one wrote.
        # Records of 0.1.0 before portable paths held an absolute ``uri`` instead of ``path``:
        # they load with no path, and the IO manager finds the data by its layout.
        raw.setdefault("path", None)
        if raw["path"] is not None and not isinstance(raw["path"], str):
            raise ValueError(f"path must be text, got {raw['path']!r}")
        try:
            return cls(**{k: v for k, v in raw.items() if k in _RECORD_FIELDS})
        except TypeError as e:  # a missing required field
            raise ValueError(str(e)) from None


_RECORD_FIELD_ORDER = tuple(f.name for f in dataclasses.fields(MaterializationRecord))
_RECORD_FIELDS = frozenset(_RECORD_FIELD_ORDER)


class RecordStore:
    """Keeps the latest :class:`MaterializationRecord` per asset (partition) on a filesystem.

    Args:
        fs: any fsspec filesystem.
        root: directory (or key prefix) in ``fs``'s form, without protocol.
        redact: removes the storage's credentials from messages.
        where: where the storage is configured (``io_managers.lake``), named in messages.
        work_dir: where pending records, locks and temporary files go; by default ``.work``
            under ``root`` (no asset key can start with a dot).

    Only a missing record reads as "no record". Wrong credentials, an unreachable endpoint or
    a missing bucket raise :class:`~prefect_assets.errors.AssetsError` (one line, exit 2 from
    the CLI): an unreadable store must never look like assets that were never materialized.
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        root: str,
        redact: Redactor | None = None,
        where: str = "",
        work_dir: str | None = None,
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.redact = redact or Redactor()
        self.where = where
        self.work_dir = (work_dir or f"{self.root}/.work").rstrip("/")

    def __repr__(self) -> str:
        return f"RecordStore({self.redact.uri(self.fs.unstrip_protocol(self.root))!r})"

    def path(self, key: AssetKey, partition: str | None = None) -> str:
        """Where the record of ``key`` (and ``partition``) lives."""
        return f"{self.root}/{stem(key, partition)}.json"

    def tmp_dir(self, area: str, key: AssetKey, partition: str | None = None) -> str:
        """The folder for temporary files of ``key``'s ``area`` (``data``, ``records``, ``pending``)."""
        return f"{self.work_dir}/tmp/{area}/{stem(key, partition)}".rpartition("/")[0]

    def lock(self, key: AssetKey, partition: str | None = None) -> AssetLock:
        """The lock that every store of ``key`` (and ``partition``) holds."""
        what = f"asset '{key}'" + (f" partition '{partition}'" if partition is not None else "")
        return self.lock_at(stem(key, partition), what)

    def lock_at(self, relative: str, what: str | None = None) -> AssetLock:
        """The lock of the asset (partition) at ``relative`` (``raw/orders``, see :func:`stem`)."""
        return asset_lock(self.fs, f"{self.work_dir}/locks/{relative}.lock", what or f"asset '{relative}'", self._error)

    def _pending_path(self, key: AssetKey, partition: str | None) -> str:
        return f"{self.work_dir}/pending/{stem(key, partition)}.json"

    def write_pending(self, key: AssetKey, partition: str | None, data: bytes) -> None:
        """Write the pending record of a store in flight, before anything is published.

        Not fsync'ed: a killed process loses nothing from the page cache, and after a power
        loss that drops it, the new data under the old record is still caught (by its file
        identity in ``status``, its hash on load) and re-run by ``--stale``; one fsync per
        asset is not worth turning that into a roll-forward.
        """
        path = self._pending_path(key, partition)
        try:
            write_atomic(self.fs, path, data, tmp_dir=self.tmp_dir("pending", key, partition), durable=False)
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, "writing the pending record", path) from None

    def read_pending(self, key: AssetKey, partition: str | None) -> bytes | None:
        """The pending record of ``key`` (and ``partition``), or None."""
        return self._read_file(self._pending_path(key, partition), "reading the pending record")

    def delete_pending(self, key: AssetKey, partition: str | None) -> None:
        """Remove the pending record; a missing one is fine."""
        self._remove_file(self._pending_path(key, partition), "deleting the pending record")

    def list_pending(self) -> list[tuple[AssetKey, str | None]]:
        """The assets (partitions) with a pending record: stores in flight, or interrupted.

        One listing; pending records are written atomically, so each names its asset.
        """
        root = f"{self.work_dir}/pending"
        try:
            self.fs.invalidate_cache(root)
            paths = self.fs.find(root)
        except FileNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, "listing pending records under", root) from None
        found = []
        for path in paths:
            if not path.endswith(".json"):
                continue
            try:
                raw = json.loads(self.fs.cat_file(path))
                found.append((AssetKey.parse(raw["key"]), raw.get("partition")))
            except FileNotFoundError:
                continue  # its store finished meanwhile
            except (ValueError, KeyError, TypeError, AssetsError):
                continue  # not ours to settle
        return found

    def clean_temporaries(self, key: AssetKey, partition: str | None = None) -> None:
        """Remove temporary files that killed writers left for ``key``'s records.

        Only safe while holding the asset's lock: then no live writer has any.
        """
        for area in ("records", "pending"):
            remove_temporaries(self.fs, self.tmp_dir(area, key, partition), f"{stem(key, partition).rpartition('/')[2]}.json")

    def check_writable(self) -> None:
        """Raise :class:`AssetsError` if records cannot be written to a local store (writes nothing)."""
        problem = local_write_problem(self.fs, self.root)
        if problem:
            raise AssetsError(
                f"{self.where + ': ' if self.where else ''}records cannot be written under "
                f"{self.redact.uri(self.fs.unstrip_protocol(self.root))}: {problem}; point base_uri at a folder you can write to"
            )

    def write(self, record: MaterializationRecord) -> None:
        """Store ``record`` atomically, replacing the previous one for its key and partition."""
        key = AssetKey.parse(record.key)
        path = self.path(key, record.partition)
        try:
            write_atomic(self.fs, path, record.to_json(), tmp_dir=self.tmp_dir("records", key, record.partition))
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, "writing the record", path) from None

    def read(self, key: AssetKey, partition: str | None = None) -> MaterializationRecord | None:
        """The latest record, or None if there is none.

        Only a missing file means None; permission, network and parse errors propagate, so
        an unreachable store is never mistaken for "never materialized".
        """
        path = self.path(key, partition)
        data = self._read_file(path, "reading the record")
        return None if data is None else self._parse(path, data)

    def read_many(
        self, keys: Iterable[AssetKey], partition: str | None = None
    ) -> dict[AssetKey, MaterializationRecord | None]:
        """Read the records of many assets at once (concurrently on S3 and other async stores).

        Args:
            keys: the assets.
            partition: the partition to read for every key, or None for unpartitioned records.

        Returns:
            Every requested key, mapped to its record or None when it has none.
        """
        paths = {key: self.path(key, partition) for key in keys}
        if not paths:
            return {}
        if is_local(self.fs):
            # Plain reads: fsspec's local cat costs more in path handling than the read itself.
            return {key: self._read_local(path) for key, path in paths.items()}
        if any(has_glob(p) for p in paths.values()):
            # fs.cat would expand glob characters (from an unusual partition key); read one by one.
            return {key: self.read(key, partition) for key in paths}
        # A list always yields a dict keyed by the normalized path, with exceptions as values.
        # On async stores (S3, GCS, Azure) fsspec fetches them concurrently.
        try:
            found = self.fs.cat(list(paths.values()), on_error="return", **_WHOLE_FILE)
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, "reading records under", self.root) from None
        out: dict[AssetKey, MaterializationRecord | None] = {}
        for key, path in paths.items():
            data = found[self.fs._strip_protocol(path)]
            if isinstance(data, BaseException):
                error = self._error(data, "reading the record", path)
                if not isinstance(error, FileNotFoundError):
                    raise error from None
                out[key] = None
            else:
                out[key] = self._parse(path, data)
        return out

    def delete(self, key: AssetKey, partition: str | None = None) -> None:
        """Remove the record of ``key`` (and ``partition``); a missing record is not an error."""
        self._remove_file(self.path(key, partition), "deleting the record")

    def _read_local(self, path: str) -> MaterializationRecord | None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc, "reading the record", path) from None
        return self._parse(path, data)

    def _read_file(self, path: str, action: str) -> bytes | None:
        """The content at ``path``, or None if there is no such file; other errors raise, sorted."""
        try:
            return self.fs.cat_file(path, **_WHOLE_FILE)
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            error = self._error(exc, action, path)
            if isinstance(error, FileNotFoundError):
                return None
            raise error from None

    def _remove_file(self, path: str, action: str) -> None:
        """Delete ``path``; a missing file is fine, other errors raise, sorted."""
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, action, path) from None

    def _error(self, exc: BaseException, action: str, path: str) -> BaseException:
        return storage_error(exc, action, self.fs.unstrip_protocol(path), self.redact, self.where)

    def _parse(self, path: str, data: bytes) -> MaterializationRecord:
        try:
            return MaterializationRecord.from_json(data)
        except ValueError as e:
            uri = self.redact.uri(self.fs.unstrip_protocol(path))
            raise AssetsError(
                f"{uri} is not a valid materialization record ({e}); delete it and re-materialize the asset"
            ) from None


def stem(key: AssetKey, partition: str | None = None) -> str:
    """``key`` (and ``partition``) as a relative path without extension: ``raw/orders/2026-01-05``."""
    base = "/".join(key.parts)
    return base if partition is None else f"{base}/{check_partition_key(partition)}"


def _plain(value: Any) -> Any:
    """JSON fallback for metadata: numpy scalars become numbers, anything else its str()."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            plain = item()
        except (TypeError, ValueError):
            plain = None
        if isinstance(plain, (int, float, str, bool)):
            return plain
    return str(value)
