"""The default IO manager: files on any fsspec filesystem (local disk, S3, GCS, Azure, ...).

Layout under ``base_uri``::

    <base_uri>/<key parts...>.<ext>                       unpartitioned asset
    <base_uri>/<key parts...>/<partition key>.<ext>       one partition
    <base_uri>/_prefect_assets/records/...                materialization records (see records.py)

The extension names the format (``.parquet``, ``.json``, ``.bin``, ``.pkl``), so the files
are readable without this library. Records live beside the data they describe, under the same
``base_uri``, so an S3 IO manager keeps its records in its bucket. Note that a partition of
asset ``a`` and the asset ``a/<partition>`` share a path; do not give a partitioned asset
children named like its partitions.

Every write is atomic (see :mod:`~prefect_assets.io_managers.storage`) and hashed on the way
out, so the data version in the record names exactly the stored bytes. Every load checks what
it read against the record: the size always, and on remote stores the content hash as well,
so a replaced or half-replaced object is reported instead of decoded.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterable, Mapping
from typing import Any

import fsspec.core

from prefect_assets.assets.keys import AssetKey, check_partition_key
from prefect_assets.errors import AssetsError
from prefect_assets.io_managers.base import (
    DATA_DELETED,
    InputContext,
    IOManager,
    OutputContext,
    StagedOutput,
    StoredOutput,
)
from prefect_assets.io_managers.exact import abort_uploads, local_write_problem, remove_exact, remove_temporaries
from prefect_assets.io_managers.formats import (
    FORMATS,
    PICKLE,
    Format,
    check_format_options,
    choose_format,
    format_by_name,
)
from prefect_assets.io_managers.records import MaterializationRecord, RecordStore
from prefect_assets.io_managers.secrets import Redactor, storage_error
from prefect_assets.io_managers.hashing import HashingWriter, content_hasher, version_of
from prefect_assets.io_managers.storage import (
    AtomicWriter,
    is_local,
    listed_identity,
    open_atomic,
    read_all,
    read_local,
)

#: Top-level directory for our own bookkeeping; no asset key may start with it.
RESERVED_DIR = "_prefect_assets"


class FsspecIOManager(IOManager):
    """Stores each asset as one file per partition on an fsspec filesystem, atomically.

    Args:
        base_uri: any fsspec URL: ``./data``, ``/abs/dir``, ``s3://bucket/prefix``,
            ``gcs://bucket/prefix``, ``memory://x``. A relative local path resolves against
            the current directory, once, here.
        storage_options: passed to the filesystem: for S3 ``endpoint_url``, ``key``,
            ``secret``, ``token``, ``client_kwargs``, ``config_kwargs``... Options left empty
            (``""`` or None, as ``${VAR:-}`` expands) are dropped, so the backend's own
            default applies; fsspec's environment configuration (``FSSPEC_S3_ENDPOINT_URL``)
            fills in what is not given. Never shown: ``repr``, messages and records only ever
            carry the redacted URL.
        allow_pickle: when False, values only pickle can store are refused, and pickles
            already in storage are not loaded (unpickling runs code).
        format_options: per-format options keyed by format name, e.g.
            ``{"parquet": {"compression": "zstd", "row_group_size": 100_000}}``.
        name: the IO manager's name in the project (``io_managers.<name>``), used in messages
            so they say where to fix a problem.

    Raises:
        AssetsError: an unknown format name or option in ``format_options``, a protocol whose
            package is not installed, or options the filesystem refuses.

    Example::

        >>> import tempfile
        >>> from prefect_assets.assets.keys import AssetKey
        >>> io = FsspecIOManager(tempfile.mkdtemp())
        >>> stored = io.handle_output(OutputContext(AssetKey.parse("reports/daily")), {"rows": 3})
        >>> stored.format, stored.path
        ('json', 'reports/daily.json')
        >>> io.load_input(InputContext(AssetKey.parse("reports/daily")))
        {'rows': 3}
    """

    def __init__(
        self,
        base_uri: str,
        storage_options: Mapping[str, Any] | None = None,
        allow_pickle: bool = True,
        format_options: Mapping[str, Mapping[str, Any]] | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name
        self.storage_options = _drop_empty(dict(storage_options or {}))
        self.allow_pickle = allow_pickle
        self.format_options = {fmt: dict(opts) if isinstance(opts, Mapping) else opts
                               for fmt, opts in (format_options or {}).items()}
        check_format_options(self.format_options)
        self._connect(base_uri)

    def _connect(self, uri: str) -> None:
        self._redact = Redactor.for_storage(uri, self.storage_options)
        try:
            self._fs, root = fsspec.core.url_to_fs(uri, **self.storage_options)
        except ImportError as exc:
            raise AssetsError(
                f"{self.where or 'IO manager'}: {self._redact.uri(uri)} needs a package that is not installed "
                f"({self._redact(str(exc))}); install it, e.g. pip install s3fs / gcsfs / adlfs"
            ) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise AssetsError(
                f"{self.where or 'IO manager'}: cannot open {self._redact.uri(uri)} "
                f"({type(exc).__name__}: {self._redact(str(exc))}); check base_uri and storage_options"
            ) from None
        self._root = root.rstrip("/")
        # A relative local base_uri is pinned to an absolute URL now: a worker process that
        # unpickles this manager may run in another directory and must find the same files.
        self._url = self._fs.unstrip_protocol(self._root) if is_local(self._fs) else uri
        #: The location for people and for Prefect (asset keys, artifacts): credentials masked.
        self.base_uri = self._redact.uri(self._url)
        self._records = RecordStore(
            self._fs, f"{self._root}/{RESERVED_DIR}/records", redact=self._redact, where=self.where,
            work_dir=f"{self._root}/{RESERVED_DIR}",
        )

    @property
    def where(self) -> str:
        """Where this manager is configured (``io_managers.lake``), for messages; may be empty."""
        return f"io_managers.{self.name}" if self.name else ""

    # Instances cross process boundaries (process pool, Dask, Ray). The filesystem object is
    # not sent along: an s3fs instance holds an event loop and HTTP sessions bound to this
    # process. The worker rebuilds it from the URL and options, and fsspec's instance cache
    # makes that cheap. storage_options do travel: the worker needs the credentials.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self._url,
            "storage_options": self.storage_options,
            "allow_pickle": self.allow_pickle,
            "format_options": self.format_options,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self.storage_options = state["storage_options"]
        self.allow_pickle = state["allow_pickle"]
        self.format_options = state["format_options"]
        self._connect(state["url"])

    def __repr__(self) -> str:
        # Only the redacted URL: storage_options hold secrets and repr ends up in logs.
        return f"FsspecIOManager({self.base_uri!r})"

    @property
    def filesystem(self) -> Any:
        """The fsspec filesystem (credentials inside: never print it)."""
        return self._fs

    @property
    def root(self) -> str:
        """``base_uri`` in the filesystem's form (no protocol)."""
        return self._root

    @property
    def record_store(self) -> RecordStore:
        """Records live under ``<base_uri>/_prefect_assets/records``."""
        return self._records

    @property
    def redact(self) -> Redactor:
        """Removes this manager's credentials from a text (for messages about its storage)."""
        return self._redact

    def path(self, key: AssetKey, partition_key: str | None, fmt: Format) -> str:
        """The filesystem path (no protocol) of ``key``/``partition_key`` stored as ``fmt``."""
        return f"{self._root}/{self.relative_path(key, partition_key, fmt)}"

    def relative_path(self, key: AssetKey, partition_key: str | None, fmt: Format) -> str:
        """Where ``key``/``partition_key`` stored as ``fmt`` lives under ``base_uri``: the
        ``path`` its records keep (``raw/orders.parquet``, ``raw/orders/2026-01-05.json``)."""
        if key.parts[0] == RESERVED_DIR:
            raise AssetsError(f"asset key '{key}' starts with {RESERVED_DIR!r}, which is reserved; rename the asset")
        base = "/".join(key.parts)
        if partition_key is not None:
            base = f"{base}/{check_partition_key(partition_key)}"
        return f"{base}.{fmt.extension}"

    def _display(self, path: str) -> str:
        return self._redact.uri(self._fs.unstrip_protocol(path))

    def check_writable(self) -> None:
        """Raise :class:`AssetsError` if a local ``base_uri`` cannot take new files.

        Called before a run, so a read-only or mistyped folder is one line, not a failed asset
        per key. Writes nothing (see :func:`~prefect_assets.io_managers.exact.local_write_problem`).
        """
        problem = local_write_problem(self._fs, self._root)
        if problem:
            raise AssetsError(
                f"{self.where or 'IO manager'}: base_uri {self.base_uri} is not writable: {problem}; "
                "point base_uri at a folder you can write to"
            )

    def handle_output(self, context: OutputContext, obj: Any) -> StoredOutput:
        """Store ``obj`` now: :meth:`stage_output`, publish, drop files in other formats.

        The framework does not call this: it stages, writes a pending record, publishes and
        writes the record under the asset's lock (:func:`~prefect_assets.io_managers.commit.commit_output`).

        Raises:
            AssetsError: see :meth:`stage_output`.
            OSError: any other storage failure; the previous version is intact either way.
        """
        stored = self.stage_output(context, obj).publish()
        self.after_commit(context, stored)
        return stored

    def stage_output(self, context: OutputContext, obj: Any) -> StagedOutput:
        """Choose a format and stream the value into storage, hashed on the way, unpublished.

        On local disk the value goes to a temporary file under ``_prefect_assets/tmp``; on S3
        it is kept in memory, or for large values uploaded as a multipart upload that is not
        completed yet. Nobody sees it until :meth:`StagedOutput.publish`.

        Raises:
            AssetsError: no allowed format can store ``obj`` (see
                :func:`~prefect_assets.io_managers.formats.choose_format`), or the storage
                refused the credentials, is unreachable or has no such bucket.
            OSError: any other storage failure; nothing was published.
        """
        fmt = choose_format(obj, context.format, self.allow_pickle, context.key)
        path = self.path(context.key, context.partition_key, fmt)
        action = f"writing asset '{context.key}' to"
        try:
            target = open_atomic(self._fs, path, self._records.tmp_dir("data", context.key, context.partition_key))
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, action, path) from None
        sink = HashingWriter(target)
        try:
            rows = fmt.write(obj, sink, self.format_options.get(fmt.name, {}))
        except BaseException as exc:
            sink.abort()
            target.discard()
            if sink.error is not None:  # the storage failed while the format was writing
                raise self._error(sink.error, action, path) from None
            if isinstance(exc, (TypeError, ValueError, pickle.PicklingError)) or (
                fmt is PICKLE and isinstance(exc, AttributeError)
            ):
                # Values of the right type but unsupported content (a datetime inside a dict,
                # mixed types in a pandas column, a lambda to pickle): the user's to fix.
                # Anything else is a bug and keeps its traceback.
                raise AssetsError(
                    f"asset '{context.key}' cannot be stored as {fmt.name}: {exc}; return plain values or set format=..."
                ) from exc
            raise
        try:
            data_version, size = sink.finish()
            identity = target.seal()
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            target.discard()
            raise self._error(exc, action, path) from None
        stored = StoredOutput(
            path=self.relative_path(context.key, context.partition_key, fmt),
            format=fmt.name,
            data_version=data_version,
            bytes=size,
            rows=rows,
            identity=identity,
        )
        return _StagedFile(stored, target, lambda exc: self._error(exc, action, path))

    def after_commit(self, context: OutputContext, stored: StoredOutput) -> None:
        """Remove the asset's files in other formats, so the layout holds one version and
        probing for it is unambiguous."""
        self._remove([self.path(context.key, context.partition_key, other) for other in FORMATS.values()
                      if other.name != stored.format])

    def stored_matches(self, record: MaterializationRecord) -> bool | None:
        """Whether the file at ``record``'s path is the one it describes (identity, size, hash)."""
        try:
            path = self._recorded_path(record, format_by_name(record.format))
        except AssetsError:
            return False
        try:
            self._fs.invalidate_cache(path)
            info = self._fs.info(path)
        except FileNotFoundError:
            return False
        if record.identity is not None and listed_identity(info) == record.identity:
            return True
        if record.bytes is not None and info.get("size") != record.bytes:
            return False
        return self._hash_of(path, record.bytes) == record.data_version

    def clean_leftovers(self, key: AssetKey, partition_key: str | None = None) -> None:
        """Remove the temporary files killed writers left for ``key``; on S3 abort its unfinished
        multipart uploads too. The caller holds the asset's lock."""
        names = [self.relative_path(key, partition_key, fmt).rpartition("/")[2] for fmt in FORMATS.values()]
        try:
            remove_temporaries(self._fs, self._records.tmp_dir("data", key, partition_key), names)
            self._records.clean_temporaries(key, partition_key)
            abort_uploads(self._fs, [self.path(key, partition_key, fmt) for fmt in FORMATS.values()])
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, "cleaning up after an interrupted run under", self._root) from None

    def load_input(self, context: InputContext) -> Any:
        """Load the value, from the record's path and format when given, else by probing.

        With a record, what was read is checked against it first: its size, and on remote
        stores its content hash (cheap next to the transfer; on local disk files are only ever
        replaced by rename, so a reader cannot see a mix).

        Raises:
            AssetsError: the asset (partition) has not been materialized, its stored data no
                longer matches its record, it is a pickle and this manager has
                ``allow_pickle: false``, or the storage refused the credentials.
        """
        record = context.record
        if record is not None and record.format:
            fmt = format_by_name(record.format)
            self._check_pickle(context.key, fmt)
            path = self._recorded_path(record, fmt)
            try:
                data, identity = self._read(path, record.bytes)
            except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
                error = self._error(exc, f"reading asset '{context.key}' from", path)
                if isinstance(error, FileNotFoundError):
                    raise AssetsError(
                        f"asset '{context.key}' was materialized to {self._display(path)}, "
                        f"which no longer exists; materialize it again: prefect-assets materialize --select +{context.key}"
                    ) from None
                raise error from None
            self._verify(context.key, record, path, data, identity)
        else:
            fmt, data = self._probe(context.key, context.partition_key)
            self._check_pickle(context.key, fmt)
        return fmt.load(data, self.format_options.get(fmt.name, {}))

    def check_stored(
        self, records: Iterable[MaterializationRecord], rehash: bool = False
    ) -> dict[tuple[str, str | None], str]:
        """Compare the stored files with ``records`` from one listing of ``base_uri``.

        One listing, not a request per asset: on S3 a thousand assets cost a page or two of
        ``ListObjectsV2``. A file that is gone is :data:`DATA_DELETED`; one whose size differs,
        or with ``rehash`` whose content hash differs, is described in one line.
        """
        wanted = [r for r in records if r.format is not None]
        if not wanted:
            return {}
        try:
            self._fs.invalidate_cache(self._root)  # a listing cached earlier in this process may be stale
            listing = self._fs.find(self._root, detail=True)
        except FileNotFoundError:
            listing = {}
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, "listing", self._root) from None
        listed = {self._fs._strip_protocol(path): info for path, info in listing.items()}
        problems: dict[tuple[str, str | None], str] = {}
        for record in wanted:
            problem = self._stored_problem(record, listed, rehash)
            if problem is not None:
                problems[(record.key, record.partition)] = problem
        return problems

    def _stored_problem(self, record: MaterializationRecord, listed: Mapping[str, Any], rehash: bool) -> str | None:
        """What is wrong with ``record``'s data, given the listing; None if nothing.

        The listing shows each file's size and identity (inode and modification time, or ETag).
        A file whose identity differs from the recorded one was rewritten or replaced behind
        our back, or merely copied back from a backup: its content decides. A record this
        manager cannot follow (a format it does not know, a path outside its root) is a problem
        of that one asset, reported as such, never an error for the others.
        """
        try:
            path = self._recorded_path(record, format_by_name(record.format))
        except AssetsError as exc:
            return f"its record cannot be followed ({exc})"
        info = listed.get(path)
        if info is None:
            return DATA_DELETED
        size = info.get("size")
        if record.bytes is not None and size is not None and size != record.bytes:
            return f"it holds {size:,} bytes, the record says {record.bytes:,}"
        replaced = record.identity is not None and listed_identity(info) != record.identity
        if not record.data_version or not (rehash or replaced):
            return None
        try:
            version = self._hash_of(path, record.bytes)
        except FileNotFoundError:  # deleted since the listing
            return DATA_DELETED
        if version != record.data_version:
            return f"its content hashes to {version}, the record says {record.data_version}"
        return None

    def _hash_of(self, path: str, size: int | None) -> str:
        """The data version of the bytes at ``path``.

        Raises:
            FileNotFoundError: no such file.
        """
        try:
            data = read_all(self._fs, path, size)
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, "reading", path) from None
        hasher = content_hasher()
        hasher.update(data)
        return version_of(hasher)

    def _recorded_path(self, record: MaterializationRecord, fmt: Format) -> str:
        """The filesystem path of the data ``record`` names, always under this manager's root.

        Records keep a path relative to ``base_uri``; one from before portable paths has none
        and is found by the layout. A path that would leave the root (absolute, ``..``, a URL)
        is refused: records on shared storage must not make us read or verify other files.
        """
        relative = record.path
        if relative is None:
            return self.path(AssetKey.parse(record.key), record.partition, fmt)
        if relative.startswith("/") or "://" in relative or "\\" in relative or ".." in relative.split("/"):
            raise AssetsError(
                f"the record of asset '{record.key}' names {relative!r}, outside {self.base_uri}; "
                f"delete the record and materialize the asset again"
            )
        return f"{self._root}/{relative}"

    def delete(self, key: AssetKey, partition_key: str | None = None) -> None:
        """Remove the stored files (any format) and the record of ``key``/``partition_key``.

        ``partition_key=None`` removes the unpartitioned value only, never a directory: that
        directory may also hold child assets (``a/b`` lives in ``a/``). Missing files are fine.
        """
        with self._records.lock(key, partition_key):
            self._remove([self.path(key, partition_key, fmt) for fmt in FORMATS.values()])
            self._records.delete(key, partition_key)
            self._records.delete_pending(key, partition_key)
            self.clean_leftovers(key, partition_key)

    def _check_pickle(self, key: AssetKey, fmt: Format) -> None:
        if fmt is PICKLE and not self.allow_pickle:
            raise AssetsError(
                f"asset '{key}' is stored as pickle, which this IO manager does not load "
                "(allow_pickle: false); re-materialize it in another format or set allow_pickle: true"
            )

    def _read(self, path: str, size: int | None) -> tuple[Any, dict | None]:
        """The content at ``path`` and, on local disk, the identity of the file it came from."""
        if is_local(self._fs):
            return read_local(path)
        return read_all(self._fs, path, size), None

    def _verify(
        self, key: AssetKey, record: MaterializationRecord, path: str, data: Any, identity: dict | None
    ) -> None:
        """Refuse bytes that are not the ones ``record`` names.

        The size always; then the content hash, unless the file is provably the one written
        (on local disk, the same inode and modification time as recorded).
        """
        size = memoryview(data).nbytes
        problem = None
        if record.bytes is not None and size != record.bytes:
            problem = f"it holds {size:,} bytes, the record says {record.bytes:,}"
        elif record.data_version and (record.identity is None or identity != record.identity):
            hasher = content_hasher()
            hasher.update(data)
            if version_of(hasher) != record.data_version:
                problem = f"its content hashes to {version_of(hasher)}, the record says {record.data_version}"
        if problem:
            raise AssetsError(
                f"asset '{key}': {self._display(path)} does not match its materialization record "
                f"({problem}); it was changed after the record was written, not by prefect-assets; "
                f"materialize it again: prefect-assets materialize --select {key}"
            )

    def _probe(self, key: AssetKey, partition_key: str | None) -> tuple[Format, Any]:
        for fmt in FORMATS.values():
            path = self.path(key, partition_key, fmt)
            try:
                return fmt, read_all(self._fs, path)
            except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
                error = self._error(exc, f"reading asset '{key}' from", path)
                if not isinstance(error, FileNotFoundError):  # a missing bucket is not a missing file
                    raise error from None
        partition = f" for partition '{partition_key}'" if partition_key is not None else ""
        raise AssetsError(
            f"asset '{key}' has not been materialized{partition}; "
            f"materialize it first: prefect-assets materialize --select +{key}"
        )

    def _remove(self, paths: list[str]) -> None:
        try:
            remove_exact(self._fs, paths)
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc, "deleting", paths[0]) from None

    def _error(self, exc: BaseException, action: str, path: str) -> BaseException:
        return storage_error(exc, action, self._fs.unstrip_protocol(path), self._redact, self.where)


class _StagedFile(StagedOutput):
    """A value in an :class:`AtomicWriter`, sealed: publishing is its last step."""

    def __init__(self, stored: StoredOutput, target: AtomicWriter, error: Any) -> None:
        self.stored = stored
        self._target = target
        self._error = error  # sorts and redacts a storage exception

    def publish(self) -> StoredOutput:
        try:
            identity = self._target.publish()
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
            raise self._error(exc) from None
        return dataclasses.replace(self.stored, identity=identity or self.stored.identity)

    def discard(self) -> None:
        self._target.discard()


def _drop_empty(options: dict[str, Any]) -> dict[str, Any]:
    """Options without ``""``/None values (``${VAR:-}`` left unset), at any depth."""
    cleaned = {}
    for name, value in options.items():
        if isinstance(value, Mapping) and value:
            value = _drop_empty(dict(value)) or None  # emptied by the cleaning: gone too
        if value is None or value == "":
            continue
        cleaned[name] = value
    return cleaned
