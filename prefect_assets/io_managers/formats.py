"""Storage formats: how a Python value becomes bytes and back.

The format is chosen by the value's type, first match wins:

========== ========= ==========================================================
name       extension stores
========== ========= ==========================================================
parquet    .parquet  ``pyarrow.Table``; pandas and polars DataFrames if installed
json       .json     dict, list, str, int, float, bool, None
raw        .bin      bytes, bytearray, memoryview (loads as bytes)
pickle     .pkl      anything else, unless the IO manager has ``allow_pickle: false``
========== ========= ==========================================================

An asset overrides the choice by name (``@asset(format="pickle")``).

>>> fmt = choose_format({"rows": 3}, override=None, allow_pickle=True, key="daily")
>>> fmt.name, fmt.extension
('json', 'json')
>>> data, rows = fmt.dump({"rows": 3}, {})
>>> data
b'{"rows": 3}'
>>> fmt.load(data, {})
{'rows': 3}

Per-IO-manager options are keyed by format name (``options: {parquet: {compression: zstd}}``
in ``prefect_assets.yaml``); :func:`check_format_options` validates them up front.
"""

from __future__ import annotations

import abc
import io
import json
import pickle
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO, ClassVar

from prefect_assets.errors import AssetsError, did_you_mean
from prefect_assets.io_managers.storage import BytesLike

#: Parquet schema-metadata key remembering which library the table came from.
TYPE_METADATA_KEY = b"prefect_assets.type"


class Format(abc.ABC):
    """One way to turn values into bytes. Instances are stateless; options come per call.

    A format *writes* into a file-like object (anything with ``write``), so large values stream
    to storage instead of being built in memory first, and *loads* from the whole stored content
    (``bytes`` or a ``pyarrow.Buffer``, possibly memory-mapped).

    Attributes:
        name: what users write in ``format=`` and what records store.
        extension: the file extension, without the dot.
        option_names: the options ``write``/``load`` understand (``options:`` in config).
    """

    name: ClassVar[str]
    extension: ClassVar[str]
    option_names: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def accepts(self, obj: Any) -> bool:
        """Whether this format can store ``obj``."""

    @abc.abstractmethod
    def write(self, obj: Any, file: BinaryIO, options: Mapping[str, Any]) -> int | None:
        """Serialize ``obj`` into ``file``; return the row count where that means something."""

    @abc.abstractmethod
    def load(self, data: BytesLike, options: Mapping[str, Any]) -> Any:
        """Deserialize what :meth:`write` produced, given all of it."""

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise ValueError for an option value that would only fail at write time."""

    def dump(self, obj: Any, options: Mapping[str, Any]) -> tuple[bytes, int | None]:
        """Serialize ``obj`` in memory: ``(bytes, rows)``. Handy in tests and small tools."""
        buffer = io.BytesIO()
        rows = self.write(obj, buffer, options)
        return buffer.getvalue(), rows

    def __repr__(self) -> str:
        return f"<format {self.name}>"


class ParquetFormat(Format):
    """Arrow tables, and pandas/polars frames, as Parquet; loads back the original type.

    Options: ``compression`` (``snappy`` by default; ``zstd``, ``gzip``, ``brotli``, ``lz4``,
    ``none``), ``compression_level``, ``row_group_size`` (rows per row group; pyarrow's default
    is 1Mi rows).
    """

    name = "parquet"
    extension = "parquet"
    option_names = frozenset({"compression", "compression_level", "row_group_size"})

    def accepts(self, obj: Any) -> bool:
        return _origin(obj) is not None

    def check_options(self, options: Mapping[str, Any]) -> None:
        import pyarrow as pa

        compression = options.get("compression")
        if isinstance(compression, str) and compression.lower() != "none" and not _codec_available(pa, compression):
            known = [c for c in ("snappy", "zstd", "gzip", "brotli", "lz4") if _codec_available(pa, c)]
            raise ValueError(f"compression {compression!r} is not available; use one of: none, {', '.join(known)}")
        size = options.get("row_group_size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ValueError(f"row_group_size must be a positive number of rows, got {size!r}")

    def write(self, obj: Any, file: BinaryIO, options: Mapping[str, Any]) -> int | None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        origin = _origin(obj)
        if origin == "pandas":
            table = pa.Table.from_pandas(obj)  # keeps the index in the b"pandas" metadata
        elif origin == "polars":
            table = obj.to_arrow()
        else:
            table = obj
        metadata = dict(table.schema.metadata or {})
        metadata[TYPE_METADATA_KEY] = origin.encode()
        table = table.replace_schema_metadata(metadata)  # zero-copy: only the schema changes
        pq.write_table(
            table,
            file,
            compression=options.get("compression", "snappy"),
            compression_level=options.get("compression_level"),
            row_group_size=options.get("row_group_size"),
        )
        return table.num_rows

    def load(self, data: BytesLike, options: Mapping[str, Any]) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(pa.BufferReader(data))
        metadata = dict(table.schema.metadata or {})
        origin = metadata.pop(TYPE_METADATA_KEY, b"arrow").decode()
        # Our marker is bookkeeping, not user data: the table handed back has no trace of it.
        table = table.replace_schema_metadata(metadata or None)
        if origin == "pandas":
            _require("pandas")
            return table.to_pandas()
        if origin == "polars":
            polars = _require("polars")
            return polars.from_arrow(table)
        return table


class JsonFormat(Format):
    """Plain JSON values. Refuses values JSON would silently change (tuples, non-str keys)."""

    name = "json"
    extension = "json"
    _TYPES = (dict, list, str, int, float, bool, type(None))

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, self._TYPES)

    def write(self, obj: Any, file: BinaryIO, options: Mapping[str, Any]) -> int | None:
        problem = _json_loss(obj, "value")
        if problem:
            raise ValueError(f"{problem}, which JSON cannot store")
        file.write(json.dumps(obj, ensure_ascii=False).encode())
        return len(obj) if isinstance(obj, list) else None

    def load(self, data: BytesLike, options: Mapping[str, Any]) -> Any:
        return json.loads(bytes(data))


class RawFormat(Format):
    """Bytes stored as they are."""

    name = "raw"
    extension = "bin"

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, (bytes, bytearray, memoryview))

    def write(self, obj: Any, file: BinaryIO, options: Mapping[str, Any]) -> int | None:
        # A bytearray could change after we return while an upload still holds it: send a copy.
        file.write(obj if isinstance(obj, bytes) else bytes(obj))
        return None

    def load(self, data: BytesLike, options: Mapping[str, Any]) -> Any:
        return bytes(data)


class PickleFormat(Format):
    """Any picklable value. Loading a pickle runs code, hence ``allow_pickle: false``."""

    name = "pickle"
    extension = "pkl"
    option_names = frozenset({"protocol"})

    def accepts(self, obj: Any) -> bool:
        return True

    def write(self, obj: Any, file: BinaryIO, options: Mapping[str, Any]) -> int | None:
        pickle.dump(obj, file, protocol=options.get("protocol", pickle.HIGHEST_PROTOCOL))
        return None

    def load(self, data: BytesLike, options: Mapping[str, Any]) -> Any:
        return pickle.loads(data)


#: Every format by name, in the order type-based choice tries them.
FORMATS: Mapping[str, Format] = {f.name: f for f in (ParquetFormat(), JsonFormat(), RawFormat(), PickleFormat())}
PICKLE = FORMATS["pickle"]


def format_by_name(name: str) -> Format:
    """Look a format up by the name users write in ``format=``.

    Raises:
        AssetsError: for an unknown name, with the closest known names.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise AssetsError(
            f"unknown format {name!r}{did_you_mean(name, FORMATS)}; known formats: {', '.join(FORMATS)}"
        ) from None


def choose_format(obj: Any, override: str | None, allow_pickle: bool, key: object) -> Format:
    """Pick the format that stores ``obj`` for asset ``key``.

    Args:
        obj: the value the asset returned.
        override: the asset's ``format=`` option, or None to choose by type.
        allow_pickle: the IO manager's setting; when False pickle is never chosen, even by name.
        key: the asset key, named in error messages.

    Raises:
        AssetsError: unknown override name, an override that cannot store ``obj``, or a value
            only pickle can store while pickle is disabled.
    """
    if override is not None:
        fmt = format_by_name(override)
        if not fmt.accepts(obj):
            raise AssetsError(
                f"asset '{key}' has format={override!r}, which cannot store a {type_name(obj)}; "
                f"return a value {override} stores or remove format="
            )
    else:
        fmt = next(f for f in FORMATS.values() if f.accepts(obj))  # pickle accepts anything
    if fmt is PICKLE and not allow_pickle:
        raise AssetsError(
            f"asset '{key}' returned a {type_name(obj)}, which only pickle can store, and this IO manager "
            "has allow_pickle: false; return a supported type (pyarrow Table, pandas/polars DataFrame, "
            "dict, list, str, number, bytes), set format=..., or allow_pickle: true"
        )
    return fmt


def type_name(obj: Any) -> str:
    """``dict`` for builtins, ``module.Qualname`` for everything else."""
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def check_format_options(options: Mapping[str, Any]) -> None:
    """Validate per-format options (``{"parquet": {"compression": "zstd"}}``) before any write.

    Raises:
        AssetsError: an unknown format or option name (with the close matches), an options
            entry that is not a mapping, or a value the format would reject at write time.
    """
    for name, opts in options.items():
        if name not in FORMATS:
            raise AssetsError(
                f"options are keyed by format name, and {name!r} is not one{did_you_mean(name, FORMATS)}; "
                f"write e.g. {{parquet: {{compression: zstd}}}} (formats: {', '.join(FORMATS)})"
            )
        fmt = FORMATS[name]
        if not isinstance(opts, Mapping):
            raise AssetsError(f"options.{name} must be a mapping of option: value, got {opts!r}")
        for option in opts:
            if option not in fmt.option_names:
                known = ", ".join(sorted(fmt.option_names)) or "none"
                raise AssetsError(
                    f"options.{name} has no option {option!r}{did_you_mean(option, fmt.option_names)}; "
                    f"known options: {known}"
                )
        try:
            fmt.check_options(opts)
        except ValueError as exc:
            raise AssetsError(f"options.{name}: {exc}") from None


def _codec_available(pa: Any, name: str) -> bool:
    try:
        return bool(pa.Codec.is_available(name))
    except (ValueError, TypeError):  # pyarrow raises for names it has never heard of
        return False


def _origin(obj: Any) -> str | None:
    # Look the libraries up in sys.modules instead of importing them: if a library has not
    # been imported, ``obj`` cannot be one of its types, and the user never pays for the import.
    # getattr, because another thread may be importing the module right now (pyarrow imports
    # pandas lazily): a partially initialized module has no DataFrame yet.
    for module_name, class_name, origin in _FRAME_TYPES:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if cls is not None and isinstance(obj, cls):
            return origin
    return None


_FRAME_TYPES = (("pyarrow", "Table", "arrow"), ("pandas", "DataFrame", "pandas"), ("polars", "DataFrame", "polars"))


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise AssetsError(
            f"this value was stored as a {module} DataFrame but {module} is not installed; "
            f"pip install 'prefect-assets[{module}]'"
        ) from None


def _json_loss(obj: Any, where: str) -> str | None:
    """Describe the first part of ``obj`` that would not come back from JSON unchanged."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                return f"{where} has the non-string key {k!r}"
            problem = _json_loss(v, f"{where}[{k!r}]")
            if problem:
                return problem
        return None
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            problem = _json_loss(v, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(obj, (str, int, float, bool, type(None))):
        return None
    return f"{where} is a {type_name(obj)}"
