"""Storage faults in the middle of a commit, on a real S3 endpoint (moto) behind a faulty proxy.

Connections reset mid-upload and an endpoint that stops answering, with and without retries:
whatever fails, each asset ends with its previous value and record or its new value and record,
and nothing is left behind (no pending record, no unfinished upload, no lease).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from prefect_assets import Definitions, asset, materialize
from prefect_assets.assets.keys import AssetKey
from prefect_assets.errors import AssetsError
from prefect_assets.io_managers import FsspecIOManager, InputContext, MaterializationRecord, OutputContext
from prefect_assets.io_managers.commit import commit_output, settle_interrupted
from prefect_assets.io_managers.leftovers import sweep
from tests.test_s3 import proxy, through  # noqa: F401 - proxy is a fixture

KEY = AssetKey.parse("raw/orders")


def direct(s3) -> FsspecIOManager:
    return FsspecIOManager(f"s3://{s3.bucket}/lake", s3.storage_options)


def _record(stored) -> MaterializationRecord:
    return MaterializationRecord(
        key=str(KEY), partition=None, run_id=None, timestamp="2026-01-01T00:00:00+00:00", code_version="c",
        input_versions={}, data_version=stored.data_version, format=stored.format, path=stored.path,
        bytes=stored.bytes, rows=stored.rows, identity=stored.identity,
    )


def store(io: FsspecIOManager, value) -> MaterializationRecord:
    return commit_output(io, io.record_store, OutputContext(KEY, format="pickle"), value, _record)


def assert_consistent_and_clean(s3, expected) -> None:
    """As the next reader sees it: settled, the value its record names, nothing left behind."""
    io = direct(s3)
    assert settle_interrupted(io.record_store, lambda key: io) == {}
    record = io.record_store.read(KEY)
    assert io.stored_matches(record)
    assert io.load_input(InputContext(KEY, None, record)) == expected
    assert io.record_store.list_pending() == []
    assert sweep(io, remove=False) == []
    uploads = io.filesystem.call_s3("list_multipart_uploads", Bucket=s3.bucket).get("Uploads", [])
    assert uploads == []


def test_upload_reset_midway_without_retries_keeps_the_previous_value_and_record(s3, proxy):
    io = through(proxy, s3, default_block_size=5 * 2**20)
    store(io, ["previous"])
    rule = proxy.cut(b"partNumber=2&", after=2 * 2**20)
    with pytest.raises((AssetsError, OSError)):
        store(io, [os.urandom(3 * 2**20) for _ in range(5)])
    assert rule.hits >= 2  # s3fs retried the part, and every attempt was reset
    proxy.clear()
    assert_consistent_and_clean(s3, ["previous"])


def test_a_record_write_that_never_arrives_is_rolled_forward_by_the_next_reader(s3, proxy):
    """The value is published, then every attempt to write its record is reset: the store
    fails, and the pending record it wrote first lets the next reader finish it."""
    io = through(proxy, s3)
    store(io, ["previous"])
    rule = proxy.cut(f"PUT /{s3.bucket}/lake/_prefect_assets/records/raw/orders.json".encode(), after=0)
    with pytest.raises((AssetsError, OSError)):
        store(io, ["new"])
    assert rule.hits >= 2
    proxy.clear()
    assert direct(s3).record_store.list_pending() != []  # until a reader comes
    assert_consistent_and_clean(s3, ["new"])


def test_an_endpoint_paused_for_seconds_delays_the_store_and_loses_nothing(s3, proxy):
    io = through(proxy, s3)
    store(io, ["previous"])
    rule, release = proxy.hold(f"PUT /{s3.bucket}/lake/raw/orders.pkl".encode())
    threading.Timer(3, release.set).start()
    started = time.monotonic()
    store(io, ["after the pause"])
    assert rule.hits == 1 and time.monotonic() - started >= 3
    assert_consistent_and_clean(s3, ["after the pause"])


@pytest.mark.prefect
def test_asset_retries_ride_out_resets_and_end_consistent(s3, proxy, prefect_server):
    calls = []

    @asset(key_prefix="raw", retries=2, format="pickle")
    def orders() -> list:
        calls.append(1)
        if len(calls) == 4:  # the network heals before the second run's third attempt
            proxy.clear()
        return [os.urandom(3 * 2**20) for _ in range(3)] + [len(calls)]

    io = through(proxy, s3, default_block_size=5 * 2**20)
    defs = Definitions(assets=[orders], io_managers={"default": io})
    assert materialize(defs).success
    # The first two attempts of the second run lose their second part to resets; the third lands.
    rule = proxy.cut(b"partNumber=2&", after=2 * 2**20)
    result = materialize(defs)
    assert result.success, result
    assert rule.hits >= 2 and len(calls) == 4 and result["raw/orders"].attempts == 3
    record = direct(s3).record_store.read(KEY)
    value = direct(s3).load_input(InputContext(KEY, None, record))
    assert value[-1] == 4  # the value of the attempt that succeeded, with its own record
    assert_consistent_and_clean(s3, value)
