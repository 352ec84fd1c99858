"""Data and record as one commit: settling interrupted stores, locks, concurrent writers, gc.

Real processes, real local disk and a real S3 endpoint (moto); the SIGKILL series of whole
materializations is in ``test_crash.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prefect_assets import Definitions, asset
from prefect_assets.assets.keys import AssetKey
from prefect_assets.assets.versions import AssetStatus
from prefect_assets.io_managers import FsspecIOManager, InputContext, IOManager, MaterializationRecord, OutputContext
from prefect_assets.io_managers.commit import INTERRUPTED, PendingCommit, commit_output, settle, settle_interrupted
from prefect_assets.io_managers.leftovers import sweep
from tests.conftest import REPO, run_cli

KEY = AssetKey.parse("shared/value")


def _record(stored, writer: str = "test", key: AssetKey = KEY) -> MaterializationRecord:
    return MaterializationRecord(
        key=str(key), partition=None, run_id=writer, timestamp="2026-01-01T00:00:00+00:00", code_version="c",
        input_versions={}, data_version=stored.data_version, format=stored.format, path=stored.path,
        bytes=stored.bytes, rows=stored.rows, metadata={"writer": writer}, identity=stored.identity,
    )


def _store(io: FsspecIOManager, value, writer: str = "test") -> MaterializationRecord:
    return commit_output(io, io.record_store, OutputContext(KEY), value, lambda stored: _record(stored, writer))


@pytest.fixture(params=["local", "s3"])
def io(request, tmp_path) -> FsspecIOManager:
    if request.param == "local":
        return FsspecIOManager(str(tmp_path / "data"))
    s3 = request.getfixturevalue("s3")
    return FsspecIOManager(f"s3://{s3.bucket}/data", s3.storage_options)


def _manager_source(io: FsspecIOManager) -> str:
    """Python that rebuilds ``io`` in a child process."""
    return f"FsspecIOManager({io.__getstate__()['url']!r}, {io.storage_options!r})"


# --- settling what a crash left --------------------------------------------------------------


def test_a_store_killed_after_publishing_is_rolled_forward_by_the_next_reader(io):
    first = _store(io, {"v": 1})
    staged = io.stage_output(OutputContext(KEY), {"v": 2})
    intended = _record(staged.stored, "second")
    io.record_store.write_pending(KEY, None, PendingCommit(str(KEY), None, intended).to_json())
    staged.publish()  # ... and the writer dies here, before its record
    assert io.record_store.read(KEY) == first  # new data under the old record, for now
    assert settle_interrupted(io.record_store, lambda key: io) == {}
    settled = io.record_store.read(KEY)
    assert settled.metadata == {"writer": "second"} and io.stored_matches(settled)
    assert io.load_input(InputContext(KEY, None, settled)) == {"v": 2}
    assert io.record_store.list_pending() == []


def test_a_store_killed_before_publishing_is_rolled_back(io):
    first = _store(io, {"v": 1})
    staged = io.stage_output(OutputContext(KEY), {"v": 2, "more": "bytes"})
    io.record_store.write_pending(KEY, None, PendingCommit(str(KEY), None, _record(staged.stored)).to_json())
    # the writer dies here: its value was staged, never published
    assert settle_interrupted(io.record_store, lambda key: io) == {}
    assert io.record_store.read(KEY) == first
    assert io.load_input(InputContext(KEY, None, first)) == {"v": 1}
    assert io.record_store.list_pending() == []


def test_an_io_manager_that_cannot_tell_leaves_the_asset_stale_until_stored_again(tmp_path):
    class Remembering(IOManager):  # a user's IO manager: no staging, no stored_matches
        def __init__(self):
            self.values = {}

        def handle_output(self, context, obj):
            from prefect_assets.io_managers import StoredOutput

            self.values[context.key] = obj
            return StoredOutput(path=str(context.key), format="memory", data_version=str(obj), bytes=1, rows=None)

        def load_input(self, context):
            return self.values[context.key]

    @asset(key_prefix="shared", io_manager="memory")
    def value() -> int:
        return 3

    custom = Remembering()
    defs = Definitions(assets=[value], io_managers={"default": FsspecIOManager(str(tmp_path / "data")), "memory": custom})
    records = defs.record_store_for(KEY)
    commit_output(custom, records, OutputContext(KEY), 2, lambda stored: _record(stored))
    records.write_pending(KEY, None, PendingCommit(str(KEY), None, None).to_json())  # then killed mid-store
    statuses = defs.stored_data_statuses(defs.read_records([KEY]))
    assert statuses[KEY] == AssetStatus("stale", INTERRUPTED)
    commit_output(custom, records, OutputContext(KEY), 3, lambda stored: _record(stored))
    assert defs.stored_data_statuses(defs.read_records([KEY])) == {} and records.read(KEY).data_version == "3"


def test_a_torn_pending_record_means_nothing_was_published(tmp_path):
    io = FsspecIOManager(str(tmp_path / "data"))
    first = _store(io, [1, 2])
    pending = Path(io.record_store.work_dir) / "pending" / "shared" / "value.json"
    pending.write_text('{"key": "shared/val')
    with io.record_store.lock(KEY):
        assert settle(io, io.record_store, KEY, None) is None
    assert not pending.exists() and io.record_store.read(KEY) == first


# --- locks --------------------------------------------------------------------------------


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_a_lock_waits_for_a_live_holder_and_is_free_at_once_when_its_holder_is_killed(io):
    holder = _child(f"""
        import time
        from prefect_assets.io_managers import FsspecIOManager
        from prefect_assets.assets.keys import AssetKey
        io = {_manager_source(io)}
        io.record_store.lock(AssetKey.parse({str(KEY)!r})).acquire()
        print("held", flush=True)
        time.sleep(600)
    """)
    assert holder.stdout.readline().strip() == "held", holder.stderr.read()
    lock = io.record_store.lock(KEY)
    assert lock.acquire(wait=False) is False  # a live holder
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    assert lock.acquire(wait=False) is True  # dead: the kernel released it, or the lease is broken
    assert time.monotonic() - started < 5
    # On S3 only the lease says a writer died holding it; it is gone once released.
    assert lock.broke_dead is (io.filesystem.protocol != "file" and "file" not in io.filesystem.protocol)
    lock.release()
    assert sweep(io, remove=False) == []


# --- concurrent writers ---------------------------------------------------------------------


def test_two_writers_and_a_reader_at_once_never_mix_data_and_records(io):
    """Two processes store one asset 15 times each while a third loads it in a loop: every load
    returns exactly the value its record describes, and the end state is one writer's pair."""
    writers = [_child(f"""
        import os
        from tests.test_commit import _store
        from prefect_assets.io_managers import FsspecIOManager
        io = {_manager_source(io)}
        for n in range(15):
            _store(io, {{"writer": {w}, "n": n, "pad": "x" * (1000 * (n % 7))}}, writer="{w}-" + str(n))
    """) for w in (1, 2)]
    reader = _child(f"""
        import json, time
        from prefect_assets.assets.keys import AssetKey
        from prefect_assets.errors import AssetsError
        from prefect_assets.io_managers import FsspecIOManager, InputContext
        io = {_manager_source(io)}
        key = AssetKey.parse({str(KEY)!r})
        loads = refused = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            record = io.record_store.read(key)
            if record is None:
                continue
            try:
                value = io.load_input(InputContext(key, None, record))
            except AssetsError:
                refused += 1  # replaced since the record was read: refused, never returned
                continue
            writer, n = record.metadata["writer"].split("-")
            assert (value["writer"], value["n"]) == (int(writer), int(n)), (value, record.metadata)
            loads += 1
            if loads >= 40:
                break
        print(json.dumps({{"loads": loads, "refused": refused}}))
    """)
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    assert reader.wait(timeout=300) == 0, reader.stderr.read()
    assert json.loads(reader.stdout.read())["loads"] > 0
    record = io.record_store.read(KEY)
    assert io.stored_matches(record)
    value = io.load_input(InputContext(KEY, None, record))
    assert record.metadata["writer"] == f"{value['writer']}-{value['n']}" and value["n"] == 14
    assert io.record_store.list_pending() == [] and sweep(io, remove=False) == []


# --- gc ---------------------------------------------------------------------------------------


def test_gc_lists_then_removes_leftovers_and_never_a_recorded_file(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "prefect_assets.yaml").write_text("name: p\nmodules: [p_assets]\n")
    (project / "p_assets.py").write_text("from prefect_assets import asset\n\n@asset\ndef nums() -> list:\n    return [1, 2]\n")
    io = FsspecIOManager(str(project / "data"))
    nums = AssetKey.parse("nums")
    stored = commit_output(io, io.record_store, OutputContext(nums), [1, 2], lambda s: _record(s, key=nums))
    data = project / "data"
    temporary = data / "_prefect_assets" / "tmp" / "data" / f"nums.json.{'a' * 32}.tmp"
    temporary.parent.mkdir(parents=True, exist_ok=True)
    temporary.write_bytes(b"x" * 100)
    legacy = data / f".nums.json.tmp-{'b' * 32}"
    legacy.write_bytes(b"y" * 10)
    superseded = data / "nums.parquet"  # another format than the record's
    superseded.write_bytes(b"z")
    listed = run_cli("gc", cwd=project, input="n\n")
    assert listed.returncode == 1 and "nothing removed" in listed.stderr
    assert "gc removes 3 leftover(s), 111 bytes" in listed.stdout
    assert temporary.exists() and legacy.exists() and superseded.exists()
    removed = run_cli("gc", "--yes", cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert not temporary.exists() and not legacy.exists() and not superseded.exists()
    assert io.stored_matches(stored) and io.load_input(InputContext(nums, None, stored)) == [1, 2]
    again = run_cli("gc", cwd=project)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_unfinished_uploads_are_aborted_by_gc_but_not_while_a_writer_holds_the_asset(s3, tmp_path):
    base = f"s3://{s3.bucket}/data"
    io = FsspecIOManager(base, s3.storage_options)
    fs = io.filesystem
    upload = fs.open(f"{s3.bucket}/data/shared/value.parquet", "wb", autocommit=False, block_size=5 * 2**20)
    upload.write(b"x" * (6 * 2**20))
    upload.flush()  # the first part goes up; the upload stays unfinished
    bucket = s3.bucket

    def unfinished() -> int:
        return len(fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []))

    assert unfinished() == 1
    with io.record_store.lock(KEY):  # as if a live writer were uploading it
        assert sweep(io) == []
        assert unfinished() == 1
    found = sweep(io)
    assert [x.kind for x in found] == ["unfinished upload"] and unfinished() == 0
    upload.closed = True  # aborted under it: do not let its finalizer try to finish it
