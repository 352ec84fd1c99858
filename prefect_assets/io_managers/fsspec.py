"""The default IO manager: files on any fsspec filesystem (local disk, S3, GCS, ...).

Layout under ``base_uri``::

    <base_uri>/<key parts...>.<ext>                       unpartitioned asset
    <base_uri>/<key parts...>/<partition key>.<ext>       one partition
    <base_uri>/_prefect_assets/records/...                materialization records (see records.py)

The extension names the format (``.parquet``, ``.json``, ``.bin``, ``.pkl``), so the files
are readable without this library. Note that a partition of asset ``a`` and the asset
``a/<partition>`` share a path; do not give a partitioned asset children named like its
partitions.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import fsspec.core

from prefect_assets.assets.keys import AssetKey
from prefect_assets.assets.versions import content_version
from prefect_assets.errors import AssetsError, did_you_mean
from prefect_assets.io_managers.base import InputContext, IOManager, OutputContext, StoredOutput
from prefect_assets.io_managers.formats import FORMATS, PICKLE, Format, choose_format, format_by_name
from prefect_assets.io_managers.records import RecordStore, check_partition
from prefect_assets.io_managers.storage import is_local, write_atomic

#: Top-level directory for our own bookkeeping; no asset key may start with it.
RESERVED_DIR = "_prefect_assets"


class FsspecIOManager(IOManager):
    """Stores each asset as one file per partition on an fsspec filesystem, atomically.

    Args:
        base_uri: any fsspec URL: ``./data``, ``/abs/dir``, ``s3://bucket/prefix``,
            ``memory://x``. A relative local path resolves against the current directory,
            once, here.
        storage_options: passed to the filesystem (``key``, ``secret``, ``endpoint_url``, ...).
            Never shown in ``repr``.
        allow_pickle: when False, values only pickle can store are refused, and pickles
            already in storage are not loaded (unpickling runs code).
        format_options: per-format options, e.g. ``{"parquet": {"compression": "zstd"}}``.

    Raises:
        AssetsError: an unknown format name or option in ``format_options``.

    Example::

        >>> import tempfile
        >>> from prefect_assets.assets.keys import AssetKey
        >>> io = FsspecIOManager(tempfile.mkdtemp())
        >>> stored = io.handle_output(OutputContext(AssetKey.parse("reports/daily")), {"rows": 3})
        >>> stored.format, stored.uri.endswith("/reports/daily.json")
        ('json', True)
        >>> io.load_input(InputContext(AssetKey.parse("reports/daily")))
        {'rows': 3}
    """

    def __init__(
        self,
        base_uri: str,
        storage_options: Mapping[str, Any] | None = None,
        allow_pickle: bool = True,
        format_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.base_uri = base_uri
        self.storage_options = dict(storage_options or {})
        self.allow_pickle = allow_pickle
        self.format_options = {name: dict(opts) for name, opts in (format_options or {}).items()}
        _check_format_options(self.format_options)
        self._connect(base_uri)

    def _connect(self, uri: str) -> None:
        self._fs, root = fsspec.core.url_to_fs(uri, **self.storage_options)
        self._root = root.rstrip("/")
        # A relative local base_uri is pinned to an absolute URL now: a worker process that
        # unpickles this manager may run in another directory and must find the same files.
        self._resolved_uri = self._fs.unstrip_protocol(self._root) if is_local(self._fs) else uri
        self._records = RecordStore(self._fs, f"{self._root}/{RESERVED_DIR}/records")

    # Instances cross process boundaries (process pool, Dask, Ray). The filesystem object is
    # not sent along: an s3fs instance holds an event loop and HTTP sessions bound to this
    # process. The worker rebuilds it from the URL and options, and fsspec's instance cache
    # makes that cheap. storage_options do travel: the worker needs the credentials.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "base_uri": self.base_uri,
            "resolved_uri": self._resolved_uri,
            "storage_options": self.storage_options,
            "allow_pickle": self.allow_pickle,
            "format_options": self.format_options,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.base_uri = state["base_uri"]
        self.storage_options = state["storage_options"]
        self.allow_pickle = state["allow_pickle"]
        self.format_options = state["format_options"]
        self._connect(state["resolved_uri"])

    def __repr__(self) -> str:
        # Only the URL: storage_options hold secrets and repr ends up in logs.
        return f"FsspecIOManager({self.base_uri!r})"

    @property
    def record_store(self) -> RecordStore:
        """Records live under ``<base_uri>/_prefect_assets/records``."""
        return self._records

    def path(self, key: AssetKey, partition_key: str | None, fmt: Format) -> str:
        """The filesystem path (no protocol) of ``key``/``partition_key`` stored as ``fmt``."""
        if key.parts[0] == RESERVED_DIR:
            raise AssetsError(f"asset key '{key}' starts with {RESERVED_DIR!r}, which is reserved; rename the asset")
        base = "/".join((self._root, *key.parts))
        if partition_key is not None:
            base = f"{base}/{check_partition(partition_key)}"
        return f"{base}.{fmt.extension}"

    def handle_output(self, context: OutputContext, obj: Any) -> StoredOutput:
        """Choose a format, serialize, and write the file atomically.

        Files of the same asset (partition) in other formats are removed afterwards, so the
        layout always holds one version and probing for it is unambiguous.

        Raises:
            AssetsError: no allowed format can store ``obj`` (see :func:`choose_format`).
        """
        fmt = choose_format(obj, context.format, self.allow_pickle, context.key)
        try:
            data, rows = fmt.dump(obj, self.format_options.get(fmt.name, {}))
        except (TypeError, ValueError, pickle.PicklingError) as e:
            # Raised for values of the right type but unsupported content (a datetime inside a
            # dict, mixed types in a pandas column, a lambda to pickle): the user's to fix.
            # Anything else is a bug and keeps its traceback.
            raise AssetsError(
                f"asset '{context.key}' cannot be stored as {fmt.name}: {e}; "
                "return plain values or set format=..."
            ) from e
        path = self.path(context.key, context.partition_key, fmt)
        write_atomic(self._fs, path, data)
        for other in FORMATS.values():
            if other is not fmt:
                self._remove(self.path(context.key, context.partition_key, other))
        return StoredOutput(
            uri=self._fs.unstrip_protocol(path),
            format=fmt.name,
            data_version=content_version(data),
            bytes=memoryview(data).nbytes,
            rows=rows,
        )

    def load_input(self, context: InputContext) -> Any:
        """Load the value, from the record's uri and format when given, else by probing.

        Raises:
            AssetsError: the asset (partition) has not been materialized, or it is a pickle
                and this manager has ``allow_pickle: false``.
        """
        record = context.record
        if record is not None and record.uri and record.format:
            fmt = format_by_name(record.format)
            path = self._fs._strip_protocol(record.uri)
            try:
                data = self._fs.cat_file(path)
            except FileNotFoundError:
                raise AssetsError(
                    f"asset '{context.key}' was materialized to {record.uri}, which no longer exists; "
                    f"materialize it again: prefect-assets materialize --select +{context.key}"
                ) from None
        else:
            fmt, data = self._probe(context.key, context.partition_key)
        if fmt is PICKLE and not self.allow_pickle:
            raise AssetsError(
                f"asset '{context.key}' is stored as pickle, which this IO manager does not load "
                "(allow_pickle: false); re-materialize it in another format or set allow_pickle: true"
            )
        return fmt.load(data, self.format_options.get(fmt.name, {}))

    def delete(self, key: AssetKey, partition_key: str | None = None) -> None:
        """Remove the stored files (any format) and the record of ``key``/``partition_key``.

        ``partition_key=None`` removes the unpartitioned value only, never a directory: that
        directory may also hold child assets (``a/b`` lives in ``a/``). Missing files are fine.
        """
        for fmt in FORMATS.values():
            self._remove(self.path(key, partition_key, fmt))
        self._records.delete(key, partition_key)

    def _probe(self, key: AssetKey, partition_key: str | None) -> tuple[Format, bytes]:
        for fmt in FORMATS.values():
            try:
                return fmt, self._fs.cat_file(self.path(key, partition_key, fmt))
            except FileNotFoundError:
                continue
        partition = f" for partition '{partition_key}'" if partition_key is not None else ""
        raise AssetsError(
            f"asset '{key}' has not been materialized{partition}; "
            f"materialize it first: prefect-assets materialize --select +{key}"
        )

    def _remove(self, path: str) -> None:
        try:
            self._fs.rm_file(path)
        except FileNotFoundError:
            pass


def _check_format_options(options: Mapping[str, Mapping[str, Any]]) -> None:
    for name, opts in options.items():
        fmt = format_by_name(name)
        for option in opts:
            if option not in fmt.option_names:
                known = ", ".join(sorted(fmt.option_names)) or "none"
                raise AssetsError(
                    f"format_options.{name} has no option {option!r}{did_you_mean(option, fmt.option_names)}; "
                    f"known options: {known}"
                )
