"""IO managers: formats, layout, records, atomic writes, pickling."""

from __future__ import annotations

import builtins
import hashlib
import os
import pickle
import threading
import uuid
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pytest

from prefect_assets.assets.keys import AssetKey
from prefect_assets.assets.versions import content_version
from prefect_assets.errors import AssetsError
from prefect_assets.io_managers import (
    DATA_DELETED,
    FsspecIOManager,
    InputContext,
    IOManager,
    MaterializationRecord,
    OutputContext,
    RecordStore,
    StoredOutput,
    hashing,
    storage,
)

ORDERS = AssetKey.parse("raw/orders")


@dataclass
class Point:  # module level, so pickle can find it
    x: int
    y: int


@pytest.fixture
def io(tmp_path):
    return FsspecIOManager(str(tmp_path / "data"))


@pytest.fixture
def memory_uri():
    """A memory:// root of its own: the memory filesystem is one global store per process."""
    root = f"memory://test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def store(io, obj, key=ORDERS, **context):
    return io.handle_output(OutputContext(key, **context), obj)


def load(io, key=ORDERS, **context):
    return io.load_input(InputContext(key, **context))


def record_for(key="raw/orders", partition=None, **changes):
    fields = dict(
        key=key, partition=partition, run_id="run-1", timestamp="2024-05-01T12:00:00+00:00",
        code_version="c1", input_versions={"raw/customers": "00ff00ff00ff00ff"},
        data_version="0123456789abcdef", format="json", path=None, bytes=10, rows=2,
        metadata={"owner": "bi"}, duration_seconds=1.5,
    )
    fields.update(changes)
    return MaterializationRecord(**fields)


# --- formats -------------------------------------------------------------------------------


def test_arrow_table_round_trips_as_parquet_without_our_marker(io):
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    stored = store(io, table)
    assert (stored.format, stored.rows) == ("parquet", 3)
    assert stored.path == "raw/orders.parquet"
    loaded = load(io)
    assert isinstance(loaded, pa.Table)
    assert loaded.equals(table)
    assert b"prefect_assets.type" not in (loaded.schema.metadata or {})


def test_parquet_options_reach_the_writer(tmp_path):
    import pyarrow.parquet as pq

    io = FsspecIOManager(str(tmp_path), format_options={"parquet": {"compression": "zstd"}})
    store(io, pa.table({"id": list(range(100))}))
    meta = pq.read_metadata(tmp_path / "raw" / "orders.parquet")
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_pandas_frame_comes_back_as_pandas(io):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": [1, 2], "amount": [9.5, 3.0]}, index=[10, 20])
    stored = store(io, frame)
    assert (stored.format, stored.rows) == ("parquet", 2)
    loaded = load(io)
    assert isinstance(loaded, pd.DataFrame)
    pd.testing.assert_frame_equal(loaded, frame)


def test_polars_frame_comes_back_as_polars(io):
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"id": [1, 2], "city": ["Oslo", "Lima"]})
    assert store(io, frame).format == "parquet"
    loaded = load(io)
    assert isinstance(loaded, pl.DataFrame)
    assert loaded.equals(frame)


@pytest.mark.parametrize(
    ("value", "fmt", "rows", "suffix"),
    [
        ({"total": 3, "by_city": {"Oslo": 1.5}, "ok": True, "none": None}, "json", None, ".json"),
        ([{"id": 1}, {"id": 2}], "json", 2, ".json"),
        ("plain text", "json", None, ".json"),
        (42, "json", None, ".json"),
        (b"\x00\x01raw", "raw", None, ".bin"),
        (bytearray(b"abc"), "raw", None, ".bin"),
        (Point(1, 2), "pickle", None, ".pkl"),
        ((1, 2), "pickle", None, ".pkl"),  # a tuple would come back from JSON as a list
    ],
)
def test_values_round_trip_in_the_format_their_type_selects(io, value, fmt, rows, suffix):
    stored = store(io, value)
    assert (stored.format, stored.rows) == (fmt, rows)
    assert stored.path == "raw/orders" + suffix
    loaded = load(io)
    expected = bytes(value) if isinstance(value, bytearray) else value
    assert loaded == expected
    assert type(loaded) is type(expected)


def test_disabled_pickle_refuses_with_key_type_and_fix(tmp_path):
    io = FsspecIOManager(str(tmp_path), allow_pickle=False)
    with pytest.raises(AssetsError) as err:
        store(io, Point(1, 2))
    message = str(err.value)
    assert "raw/orders" in message and "Point" in message
    assert "format=" in message and "allow_pickle: true" in message
    assert not any(tmp_path.rglob("*.pkl"))


def test_disabled_pickle_also_refuses_to_load_an_existing_pickle(tmp_path):
    store(FsspecIOManager(str(tmp_path)), Point(1, 2))
    with pytest.raises(AssetsError, match="allow_pickle"):
        load(FsspecIOManager(str(tmp_path), allow_pickle=False))


def test_format_override_wins_over_the_type(io):
    assert store(io, {"a": 1}, format="pickle").format == "pickle"
    assert load(io) == {"a": 1}


def test_format_override_that_cannot_store_the_value_names_key_format_and_type(io):
    with pytest.raises(AssetsError) as err:
        store(io, pa.table({"id": [1]}), format="json")
    message = str(err.value)
    assert "raw/orders" in message and "'json'" in message and "pyarrow" in message and "Table" in message


def test_unknown_format_name_suggests_the_close_one(io):
    with pytest.raises(AssetsError, match=r"unknown format 'parquett'.*did you mean 'parquet'"):
        store(io, pa.table({"id": [1]}), format="parquett")


def test_json_value_that_would_change_is_refused_not_mangled(io):
    with pytest.raises(AssetsError, match=r"raw/orders.*json.*non-string key 1"):
        store(io, {1: "one"})


def test_unknown_format_option_is_refused_at_construction(tmp_path):
    with pytest.raises(AssetsError, match=r"compresion.*did you mean 'compression'"):
        FsspecIOManager(str(tmp_path), format_options={"parquet": {"compresion": "zstd"}})


# --- layout, versions, delete --------------------------------------------------------------


def test_data_version_and_size_describe_the_bytes_on_disk(tmp_path):
    io = FsspecIOManager(str(tmp_path))
    stored = store(io, pa.table({"id": [1, 2, 3]}))
    on_disk = (tmp_path / "raw" / "orders.parquet").read_bytes()
    assert stored.data_version == hashlib.sha256(on_disk).hexdigest()[:16]
    assert stored.bytes == len(on_disk)
    assert stored.path == "raw/orders.parquet"


def test_same_value_same_version_different_value_different_version(io):
    first = store(io, {"a": 1}).data_version
    assert store(io, {"a": 1}).data_version == first
    assert store(io, {"a": 2}).data_version != first


def test_partitions_are_files_under_the_asset_directory(tmp_path):
    io = FsspecIOManager(str(tmp_path))
    store(io, {"day": 1}, partition_key="2024-01-01")
    store(io, {"day": 2}, partition_key="2024-01-02")
    assert sorted(p.name for p in (tmp_path / "raw" / "orders").iterdir()) == ["2024-01-01.json", "2024-01-02.json"]
    assert load(io, partition_key="2024-01-02") == {"day": 2}


def test_partition_key_cannot_escape_the_asset_directory(io):
    with pytest.raises(AssetsError, match="partition key"):
        store(io, {"x": 1}, partition_key="../../etc")


def test_changing_format_leaves_one_file(tmp_path):
    io = FsspecIOManager(str(tmp_path))
    store(io, {"a": 1})
    store(io, b"now bytes")
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["orders.bin"]
    assert load(io) == b"now bytes"


def test_load_uses_the_record_path_and_format(tmp_path):
    io = FsspecIOManager(str(tmp_path))
    stored = store(io, {"a": 1}, key=AssetKey.parse("elsewhere"))
    record = record_for(path=stored.path, format=stored.format, bytes=stored.bytes, data_version=stored.data_version)
    # The record, not the key's default path, says where the upstream's data is.
    assert io.load_input(InputContext(ORDERS, record=record)) == {"a": 1}


def test_record_pointing_at_deleted_data_says_so(io, tmp_path):
    stored = store(io, {"a": 1})
    os.remove(tmp_path / "data" / "raw" / "orders.json")
    with pytest.raises(AssetsError, match="no longer exists"):
        io.load_input(InputContext(ORDERS, record=record_for(path=stored.path, format="json")))


def test_missing_input_says_how_to_materialize_it(io):
    with pytest.raises(AssetsError) as err:
        load(io)
    assert str(err.value) == (
        "asset 'raw/orders' has not been materialized; "
        "materialize it first: prefect-assets materialize --select +raw/orders"
    )
    with pytest.raises(AssetsError, match="partition '2024-01-01'"):
        load(io, partition_key="2024-01-01")


def test_delete_removes_data_and_record_of_one_partition_only(io):
    store(io, {"d": 1}, partition_key="a")
    store(io, {"d": 2}, partition_key="b")
    io.record_store.write(record_for(partition="a"))
    io.delete(ORDERS, "a")
    assert io.record_store.read(ORDERS, "a") is None
    with pytest.raises(AssetsError, match="not been materialized"):
        load(io, partition_key="a")
    assert load(io, partition_key="b") == {"d": 2}
    io.delete(ORDERS, "a")  # deleting again is not an error


def test_reserved_directory_is_not_an_asset(io):
    with pytest.raises(AssetsError, match="reserved"):
        store(io, {"a": 1}, key=AssetKey.parse("_prefect_assets/records"))


def test_generic_fsspec_backend_round_trips(memory_uri):
    io = FsspecIOManager(memory_uri)
    stored = store(io, pa.table({"id": [1, 2]}), partition_key="p1")
    assert stored.path == "raw/orders/p1.parquet"
    assert fsspec.filesystem("memory").exists(f"{memory_uri}/raw/orders/p1.parquet")
    assert load(io, partition_key="p1").column("id").to_pylist() == [1, 2]
    io.record_store.write(record_for(partition="p1"))
    assert io.record_store.read(ORDERS, "p1") == record_for(partition="p1")


# --- records -------------------------------------------------------------------------------


def test_record_json_round_trip_and_layout(tmp_path):
    records = RecordStore(fsspec.filesystem("file"), str(tmp_path))
    plain, partitioned = record_for(), record_for(partition="2024-01-01", data_version="ffffffffffffffff")
    records.write(plain)
    records.write(partitioned)
    assert (tmp_path / "raw" / "orders.json").is_file()
    assert (tmp_path / "raw" / "orders" / "2024-01-01.json").is_file()
    assert records.read(ORDERS) == plain
    assert records.read(ORDERS, "2024-01-01") == partitioned
    assert MaterializationRecord.from_json(plain.to_json()) == plain


def test_record_write_replaces_the_previous_one(tmp_path):
    records = RecordStore(fsspec.filesystem("file"), str(tmp_path))
    records.write(record_for(run_id="run-1"))
    records.write(record_for(run_id="run-2"))
    assert records.read(ORDERS).run_id == "run-2"


def test_missing_record_is_none_but_a_corrupt_one_is_an_error(tmp_path):
    records = RecordStore(fsspec.filesystem("file"), str(tmp_path))
    assert records.read(ORDERS) is None
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "orders.json").write_text("{not json")
    with pytest.raises(AssetsError, match="not a valid materialization record"):
        records.read(ORDERS)


def test_unreadable_record_store_is_not_reported_as_missing(tmp_path):
    # A path whose parent is a file: the OS says "not a directory", which is not "missing".
    (tmp_path / "blocker").write_text("")
    records = RecordStore(fsspec.filesystem("file"), str(tmp_path / "blocker"))
    with pytest.raises(AssetsError, match="part of that path is a file, not a folder.*; fix base_uri"):
        records.read(ORDERS)


def test_read_many_maps_every_key(memory_uri):
    fs, root = fsspec.core.url_to_fs(memory_uri)
    records = RecordStore(fs, root)
    customers = AssetKey.parse("raw/customers")
    records.write(record_for())
    assert records.read_many([ORDERS, customers]) == {ORDERS: record_for(), customers: None}
    assert records.read_many([]) == {}


def test_record_delete(tmp_path):
    records = RecordStore(fsspec.filesystem("file"), str(tmp_path))
    records.write(record_for())
    records.delete(ORDERS)
    assert records.read(ORDERS) is None
    records.delete(ORDERS)  # already gone: fine


def test_metadata_json_cannot_hold_is_written_as_text(tmp_path):
    import datetime

    records = RecordStore(fsspec.filesystem("file"), str(tmp_path))
    records.write(record_for(metadata={"when": datetime.date(2024, 1, 2)}))
    assert records.read(ORDERS).metadata == {"when": "2024-01-02"}


# --- atomic writes -------------------------------------------------------------------------


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if ".tmp-" in p.name]


def test_write_that_fails_midway_keeps_the_previous_file(io, tmp_path, monkeypatch):
    store(io, {"version": 1})
    target = tmp_path / "data" / "raw" / "orders.json"
    before = target.read_bytes()
    real_open = builtins.open

    class DiskFullAfterHalf:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)

        def write(self, data):
            self.f.write(bytes(data)[: len(data) // 2])
            raise OSError(28, "No space left on device")

    def failing_open(path, mode="r", *args, **kwargs):
        return DiskFullAfterHalf(real_open(path, mode, *args, **kwargs))

    monkeypatch.setattr(storage, "open", failing_open, raising=False)
    with pytest.raises(OSError, match="No space left"):
        store(io, {"version": 2, "padding": "x" * 1000})
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert _leftovers(target.parent) == []
    assert load(io) == {"version": 1}


def test_rename_that_fails_keeps_the_previous_file(io, tmp_path, monkeypatch):
    store(io, {"version": 1})
    target = tmp_path / "data" / "raw" / "orders.json"

    def failing_replace(src, dst):
        raise PermissionError("replace refused")

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(AssetsError, match="permission denied.*replace refused"):
        store(io, {"version": 2})
    monkeypatch.undo()
    assert load(io) == {"version": 1}
    assert _leftovers(target.parent) == []


class FakeObjectStore(fsspec.AbstractFileSystem):
    """Records what a writer does on an object store, without one."""

    cachable = False
    default_block_size = 5 * 2**20

    def __init__(self, protocol):
        super().__init__()
        self.protocol = protocol
        self.puts, self.files = [], []

    def pipe_file(self, path, value, **kwargs):
        self.puts.append((path, value))

    def _open(self, path, mode="rb", autocommit=True, **kwargs):
        assert mode == "wb" and autocommit is False, "an object store upload must not commit on close"
        self.files.append(FakeUpload(path))
        return self.files[-1]


class FakeUpload:
    def __init__(self, path):
        self.path, self.data, self.events = path, b"", []

    def write(self, data):
        self.data += bytes(data)

    def close(self):
        self.events.append("close")

    def commit(self):
        self.events.append("commit")

    def discard(self):
        self.events.append("discard")


def test_small_object_store_write_is_one_complete_put():
    # An fsspec file object commits in __exit__ even after an error, which would publish half
    # an object; a small payload goes up in one pipe_file instead.
    fs = FakeObjectStore("gcs")
    with storage.open_atomic(fs, "bucket/x.bin") as f:
        f.write(memoryview(b"pay"))
        f.write(b"load")
    assert fs.puts == [("bucket/x.bin", b"payload")] and fs.files == []
    assert type(fs.puts[0][1]) is bytes  # aiobotocore takes bytes, not memoryview
    with pytest.raises(RuntimeError), storage.open_atomic(fs, "bucket/y.bin") as f:
        f.write(b"half")
        raise RuntimeError("encoder failed")
    assert [path for path, _ in fs.puts] == ["bucket/x.bin"]


def test_large_s3_write_streams_a_multipart_upload_committed_or_discarded():
    fs = FakeObjectStore("s3")
    part = fs.default_block_size
    with storage.open_atomic(fs, "bucket/big.bin") as f:
        f.write(b"a" * (part - 1))
        assert fs.files == []  # still one part's worth: buffered for a single PUT
        f.write(b"b" * 2)
        f.write(b"c")
    upload = fs.files[0]
    assert upload.data == b"a" * (part - 1) + b"bbc" and upload.events == ["close", "commit"] and fs.puts == []

    with pytest.raises(RuntimeError), storage.open_atomic(fs, "bucket/big.bin") as f:
        f.write(b"x" * (part + 1))
        raise RuntimeError("encoder failed")
    assert fs.files[1].events == ["discard"]  # aborted: the parts never become an object


def test_other_backends_write_a_temporary_sibling_then_rename(tmp_path):
    from fsspec.implementations.dirfs import DirFileSystem

    fs = DirFileSystem(str(tmp_path), fsspec.filesystem("file"))  # a backend that is neither
    storage.write_atomic(fs, "a/b.json", b"v1")
    with pytest.raises(RuntimeError), storage.open_atomic(fs, "a/b.json") as f:
        f.write(b"v2, half")
        raise RuntimeError("encoder failed")
    assert (tmp_path / "a" / "b.json").read_bytes() == b"v1"
    storage.write_atomic(fs, "a/b.json", b"v3")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]
    assert (tmp_path / "a" / "b.json").read_bytes() == b"v3"


# --- hashing on the way out -----------------------------------------------------------------


class Collect:
    def __init__(self, fail_after=None):
        self.chunks, self.fail_after = [], fail_after

    def write(self, data):
        if self.fail_after is not None and sum(map(len, self.chunks)) >= self.fail_after:
            raise OSError(28, "No space left on device")
        self.chunks.append(bytes(data))
        return len(data)


@pytest.mark.parametrize("pieces", [[b"small"], [os.urandom(1 << 20) for _ in range(9)] + [b"tail", memoryview(b"mv")]])
def test_hashing_writer_versions_exactly_the_bytes_it_forwards(pieces):
    target = Collect()
    writer = hashing.HashingWriter(target, batch_size=2 << 20)
    for piece in pieces:
        writer.write(piece)
    version, size = writer.finish()
    forwarded = b"".join(target.chunks)
    assert forwarded == b"".join(bytes(p) for p in pieces)
    assert (version, size) == (content_version(forwarded), len(forwarded))


def test_hashing_writer_stops_the_producer_when_the_target_fails():
    writer = hashing.HashingWriter(Collect(fail_after=3 << 20), batch_size=1 << 20, max_batches=2)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(100):  # the error surfaces on a later write, long before all 100 MiB
            writer.write(os.urandom(1 << 20))
    assert isinstance(writer.error, OSError)
    writer.abort()  # does not raise again, and the thread is gone
    assert not any(t.name == "prefect-assets-writer" for t in threading.enumerate())


def test_encoder_failing_midway_leaves_the_previous_file_and_no_temporary(io, tmp_path):
    store(io, ["previous"], format="pickle")

    class Explodes:
        def __reduce__(self):
            raise TypeError("cannot pickle this one")

    with pytest.raises(AssetsError, match="cannot be stored as pickle"):
        store(io, [os.urandom(3 << 20) for _ in range(4)] + [Explodes()], format="pickle")
    assert load(io) == ["previous"]
    assert _leftovers(tmp_path / "data" / "raw") == []


# --- pickling, repr, the base class --------------------------------------------------------


def test_pickled_manager_still_reads_and_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io = FsspecIOManager("./data", format_options={"parquet": {"compression": "zstd"}})
    store(io, {"a": 1})
    monkeypatch.chdir(tmp_path.parent)  # a worker may run elsewhere: the relative path is pinned
    clone = pickle.loads(pickle.dumps(io))
    assert repr(clone) == repr(io)
    assert load(clone) == {"a": 1}
    store(clone, {"a": 2})
    assert load(io) == {"a": 2}
    assert clone.format_options == {"parquet": {"compression": "zstd"}}


def test_repr_hides_storage_options(memory_uri):
    io = FsspecIOManager(memory_uri, storage_options={"secret_token": "hunter2"})
    assert "hunter2" not in repr(io)
    assert memory_uri in repr(io)


def test_custom_io_manager_needs_only_two_methods():
    class Dict(IOManager):
        def __init__(self):
            self.values = {}

        def handle_output(self, context, obj):
            self.values[context.key] = obj
            return StoredOutput(path=str(context.key), format="python", data_version="0", bytes=0, rows=None)

        def load_input(self, context):
            return self.values[context.key]

    io = Dict()
    io.handle_output(OutputContext(ORDERS), [1, 2])
    assert io.load_input(InputContext(ORDERS)) == [1, 2]
    assert io.record_store is None
    with pytest.raises(NotImplementedError, match="Dict cannot delete"):
        io.delete(ORDERS)
    assert io.check_stored([record_for()]) == {}  # it cannot look into its storage: reports nothing
    with pytest.raises(TypeError):
        type("Half", (IOManager,), {"handle_output": lambda self, c, o: None})()


# --- loading checks what it read ------------------------------------------------------------


def test_load_checks_the_size_against_the_record(io, tmp_path):
    stored = store(io, {"a": 1})
    (tmp_path / "data" / "raw" / "orders.json").write_bytes(b'{"a": 10}')
    record = record_for(path=stored.path, format="json", bytes=stored.bytes, data_version=stored.data_version)
    with pytest.raises(AssetsError, match=r"does not match its materialization record \(it holds 9 bytes, the record says 8\)"):
        io.load_input(InputContext(ORDERS, record=record))


def test_remote_load_checks_the_content_hash_against_the_record(memory_uri):
    io = FsspecIOManager(memory_uri)
    stored = store(io, {"a": 1})
    fsspec.filesystem("memory").pipe_file(f"{memory_uri}/{stored.path}", b'{"a": 2}')  # same size, other bytes
    record = record_for(path=stored.path, format="json", bytes=stored.bytes, data_version=stored.data_version)
    with pytest.raises(AssetsError, match="its content hashes to"):
        io.load_input(InputContext(ORDERS, record=record))


def test_empty_bytes_round_trip(io):
    stored = store(io, b"")
    assert (stored.bytes, stored.data_version) == (0, content_version(b""))
    record = record_for(path=stored.path, format="raw", bytes=0, data_version=stored.data_version)
    assert io.load_input(InputContext(ORDERS, record=record)) == b""


def test_large_table_round_trips_through_the_background_writer(tmp_path):
    import pyarrow.parquet as pq

    io = FsspecIOManager(str(tmp_path), format_options={"parquet": {"row_group_size": 200_000, "compression": "none"}})
    table = pa.table({"id": pa.array(range(1_000_000), pa.int64())})  # ~8 MB: several batches
    stored = store(io, table)
    on_disk = (tmp_path / "raw" / "orders.parquet").read_bytes()
    assert stored.data_version == content_version(on_disk) and stored.bytes == len(on_disk) > 8_000_000
    assert pq.read_metadata(tmp_path / "raw" / "orders.parquet").num_row_groups == 5
    record = record_for(path=stored.path, format="parquet", bytes=stored.bytes, data_version=stored.data_version)
    assert io.load_input(InputContext(ORDERS, record=record)).equals(table)


def test_storage_options_left_empty_are_dropped(memory_uri):
    io = FsspecIOManager(memory_uri, storage_options={"a": "", "b": None, "nested": {"c": ""}, "keep": {"d": 1}})
    assert io.storage_options == {"keep": {"d": 1}}


@pytest.mark.parametrize("module_name", ["formats", "storage", "secrets", "records", "fsspec"])
def test_docstring_examples_run(module_name):
    import doctest
    import importlib

    module = importlib.import_module(f"prefect_assets.io_managers.{module_name}")
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried and failures == 0


# --- stored data against records ------------------------------------------------------------


def test_check_stored_finds_deleted_and_changed_data_with_one_listing(memory_uri, monkeypatch):
    io = FsspecIOManager(memory_uri)
    records = []
    for name in "abcd":
        key = AssetKey.parse(f"raw/{name}")
        stored = store(io, {"v": name}, key=key)
        records.append(record_for(key=str(key), path=stored.path, format=stored.format, bytes=stored.bytes,
                                  data_version=stored.data_version))
    memory = fsspec.filesystem("memory")
    memory.rm_file(f"{memory_uri}/raw/b.json")
    memory.pipe_file(f"{memory_uri}/raw/c.json", b'{"v": "cc"}')  # one byte more
    memory.pipe_file(f"{memory_uri}/raw/d.json", b'{"v": "D"}')  # same size, other bytes
    listings = []
    real_find = io._fs.find
    monkeypatch.setattr(io._fs, "find", lambda *args, **kwargs: listings.append(args) or real_find(*args, **kwargs))
    for method in ("info", "exists", "size", "ls"):
        monkeypatch.setattr(io._fs, method, lambda *args, _m=method, **kwargs: pytest.fail(f"{_m}() per record"))
    assert io.check_stored(records) == {
        ("raw/b", None): DATA_DELETED, ("raw/c", None): "it holds 11 bytes, the record says 10",
    }
    assert len(listings) == 1
    rehashed = io.check_stored(records, rehash=True)
    assert rehashed[("raw/d", None)].startswith("its content hashes to ") and ("raw/a", None) not in rehashed


def test_a_record_path_outside_the_base_uri_is_refused(io):
    stored = store(io, {"a": 1})
    for escaping in ("../../etc/passwd", "/etc/passwd", "s3://other/bucket.json"):
        record = record_for(path=escaping, format="json", bytes=stored.bytes, data_version=stored.data_version)
        with pytest.raises(AssetsError, match="outside"):
            io.load_input(InputContext(ORDERS, record=record))


def test_a_record_check_stored_cannot_follow_is_that_assets_problem_only(io):
    stored = store(io, {"a": 1})
    good = record_for(path=stored.path, format=stored.format, bytes=stored.bytes, data_version=stored.data_version)
    unknown_format = record_for(key="raw/csv", path="raw/csv.csv", format="csv", bytes=3)
    outside = record_for(key="raw/out", path="../elsewhere.json", format="json", bytes=3)
    problems = io.check_stored([good, unknown_format, outside])
    assert set(problems) == {("raw/csv", None), ("raw/out", None)}
    assert problems[("raw/csv", None)].startswith("its record cannot be followed (unknown format 'csv'")
    assert "outside" in problems[("raw/out", None)]


def test_a_record_whose_path_is_not_text_is_not_a_record():
    data = record_for(path=None).to_json().replace(b'"path": null', b'"path": 7')
    with pytest.raises(ValueError, match="path must be text"):
        MaterializationRecord.from_json(data)
