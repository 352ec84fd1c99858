"""Storage against a real S3 endpoint: the moto server on 127.0.0.1, reached through s3fs.

What we store is checked with boto3, independently of our code (and of s3fs): the objects, their
bytes, the records and that each record's data version is the hash of exactly those bytes.
Failures are real: a TCP proxy between s3fs and moto cuts uploads mid-body (tests/s3_faults.py),
and a second moto server that checks signatures refuses a wrong secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from prefect_assets.assets.keys import AssetKey
from prefect_assets.errors import AssetsError
from prefect_assets.io_managers import (
    FsspecIOManager,
    InputContext,
    MaterializationRecord,
    OutputContext,
    storage,
)
from tests.conftest import run_cli
from tests.prefect_output import prefect_texts
from tests.s3_faults import FaultyProxy

# Credentials the moto server accepts (it checks none) and that must never be printed: the
# secret holds "/" and "+" so that its URL-encoded form is checked as well.
KEY = "AKIALEAKCHECKKEY7Q2"
SECRET = "wJalrXUtnFEMI/K7MDENG+LEAKCHECKsecret0"
SECRETS = (KEY, SECRET, "K7MDENG%2BLEAKCHECK", "wJalrXUtnFEMI%2FK7MDENG")

ORDERS = AssetKey.parse("raw/orders")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret {secret!r} leaked in:\n{text}"


def boto(s3):
    return boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def get(s3, key: str) -> bytes:
    return boto(s3).get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def object_keys(s3) -> set[str]:
    pages = boto(s3).get_paginator("list_objects_v2").paginate(Bucket=s3.bucket)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def options(endpoint_url: str, **more) -> dict:
    """SPEC-style storage options: endpoint_url, key and secret at the top level."""
    return {"endpoint_url": endpoint_url, "key": KEY, "secret": SECRET, **more}


def lake(s3, prefix: str = "lake", endpoint_url: str | None = None, **more) -> FsspecIOManager:
    return FsspecIOManager(f"s3://{s3.bucket}/{prefix}", storage_options=options(endpoint_url or s3.endpoint_url, **more),
                           name="lake")


def record_of(stored, key: AssetKey = ORDERS) -> MaterializationRecord:
    return MaterializationRecord(
        key=str(key), partition=None, run_id=None, timestamp="2026-01-01T00:00:00+00:00", code_version="c",
        input_versions={}, data_version=stored.data_version, format=stored.format, path=stored.path,
        bytes=stored.bytes, rows=stored.rows,
    )


# ---------------------------------------------------------------------------------------------
# Storage options, formats, records


def test_spec_storage_options_write_what_boto3_reads_back(s3):
    io = lake(s3)
    table = pa.table({"id": [1, 2, 3], "city": ["Oslo", "Lima", "Pune"]})
    stored = io.handle_output(OutputContext(ORDERS), table)
    assert stored.path == "raw/orders.parquet"
    body = get(s3, "lake/raw/orders.parquet")
    assert (stored.data_version, stored.bytes, stored.rows) == (version(body), len(body), 3)
    assert pq.read_table(pa.BufferReader(body)).select(["id", "city"]).equals(table)
    io.record_store.write(record_of(stored))
    record = json.loads(get(s3, "lake/_prefect_assets/records/raw/orders.json"))
    assert record["data_version"] == version(body) and record["bytes"] == len(body)
    assert io.load_input(InputContext(ORDERS, record=record_of(stored))).equals(table)
    assert_no_secret(repr(io), io.base_uri, json.dumps(record), pickle.dumps(io.record_store.read(ORDERS)).hex())


def test_client_kwargs_and_top_level_endpoint_reach_the_same_bucket(s3):
    lake(s3).handle_output(OutputContext(ORDERS), {"a": 1})
    nested = FsspecIOManager(f"s3://{s3.bucket}/lake", storage_options={
        "key": KEY, "secret": SECRET, "client_kwargs": {"endpoint_url": s3.endpoint_url, "region_name": "us-east-1"}})
    assert nested.load_input(InputContext(ORDERS)) == {"a": 1}


def test_empty_options_are_dropped_so_defaults_apply(s3):
    # ${VAR:-} expands to "": the option is left out instead of handed to s3fs as "".
    io = FsspecIOManager(f"s3://{s3.bucket}/lake", storage_options={**options(s3.endpoint_url), "token": "",
                                                                  "client_kwargs": {"region_name": None}})
    assert io.storage_options == options(s3.endpoint_url)
    io.handle_output(OutputContext(ORDERS), [1])
    assert get(s3, "lake/raw/orders.json") == b"[1]"


def test_fsspec_environment_configuration_is_honoured(s3, monkeypatch):
    import fsspec.config

    # What FSSPEC_S3_ENDPOINT_URL / FSSPEC_S3_KEY / FSSPEC_S3_SECRET put there at import.
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3.endpoint_url, "key": KEY, "secret": SECRET})
    io = FsspecIOManager(f"s3://{s3.bucket}/env")
    io.handle_output(OutputContext(ORDERS), {"from": "env"})
    assert json.loads(get(s3, "env/raw/orders.json")) == {"from": "env"}
    assert io.redact(f"x {SECRET} y") == "x *** y"  # secrets from the environment are known too


@pytest.mark.parametrize("value,fmt", [
    ({"n": 1}, "json"), (b"\x00raw", "raw"), (b"", "raw"), ((1, "tuple"), "pickle"), (pa.table({"x": [1.5]}), "parquet"),
])
def test_every_format_round_trips_on_s3_and_changing_format_leaves_one_object(s3, value, fmt):
    io = lake(s3)
    io.handle_output(OutputContext(ORDERS, partition_key="2026-01-01"), "previous, as json")
    stored = io.handle_output(OutputContext(ORDERS, partition_key="2026-01-01"), value)
    assert stored.format == fmt
    assert [k for k in object_keys(s3) if k.startswith("lake/raw/orders/")] == [f"lake/{stored.path}"]
    loaded = io.load_input(InputContext(ORDERS, "2026-01-01", record=record_of(stored)))
    assert loaded.equals(value) if fmt == "parquet" else loaded == value


def test_pandas_and_polars_frames_come_back_as_themselves_from_s3(s3):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    io = lake(s3)
    frame = pd.DataFrame({"a": [1, 2]}, index=[5, 6])
    stored = io.handle_output(OutputContext(ORDERS), frame)
    pd.testing.assert_frame_equal(io.load_input(InputContext(ORDERS, record=record_of(stored))), frame)
    polars_frame = pl.DataFrame({"b": ["x"]})
    stored = io.handle_output(OutputContext(ORDERS), polars_frame)
    assert io.load_input(InputContext(ORDERS, record=record_of(stored))).equals(polars_frame)


def test_parquet_options_from_config_reach_the_object(s3):
    io = FsspecIOManager(f"s3://{s3.bucket}/lake", storage_options=options(s3.endpoint_url),
                         format_options={"parquet": {"compression": "zstd", "row_group_size": 10}})
    io.handle_output(OutputContext(ORDERS), pa.table({"id": list(range(35))}))
    meta = pq.read_metadata(pa.BufferReader(get(s3, "lake/raw/orders.parquet")))
    assert meta.num_row_groups == 4
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_large_table_streams_as_multipart_and_reads_back_in_ranges(s3, monkeypatch):
    # 5 MiB parts (s3fs's minimum) and 4 MiB read ranges, so a ~12 MB table exercises both.
    monkeypatch.setattr(storage, "RANGE_SIZE", 4 * 2**20)
    io = lake(s3, default_block_size=5 * 2**20)
    rows = 1_500_000
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "x": pa.array(range(rows), pa.float64())})
    stored = io.handle_output(OutputContext(ORDERS), table)
    head = boto(s3).head_object(Bucket=s3.bucket, Key="lake/raw/orders.parquet")
    assert re.search(r"-\d+\"?$", head["ETag"]), f"not a multipart upload: {head['ETag']}"
    body = get(s3, "lake/raw/orders.parquet")
    assert stored.bytes == len(body) > 2 * 4 * 2**20 and stored.data_version == version(body)
    assert io.load_input(InputContext(ORDERS, record=record_of(stored))).equals(table)


def test_load_refuses_an_object_that_no_longer_matches_its_record(s3):
    io = lake(s3)
    stored = io.handle_output(OutputContext(ORDERS), {"value": 1})
    # Same size, different bytes, written behind our back: only the hash can tell.
    boto(s3).put_object(Bucket=s3.bucket, Key="lake/raw/orders.json", Body=b'{"value": 2}')
    with pytest.raises(AssetsError, match=r"does not match its materialization record \(its content hashes to"):
        io.load_input(InputContext(ORDERS, record=record_of(stored)))
    boto(s3).put_object(Bucket=s3.bucket, Key="lake/raw/orders.json", Body=b'{"value": 10}')
    with pytest.raises(AssetsError, match="it holds 13 bytes, the record says 12"):
        io.load_input(InputContext(ORDERS, record=record_of(stored)))


def test_records_read_concurrently_and_only_missing_reads_as_none(s3):
    io = lake(s3)
    keys = [AssetKey.parse(f"group/asset_{i:03d}") for i in range(60)]
    for key in keys[::2]:
        io.record_store.write(record_of(io.handle_output(OutputContext(key), {"k": str(key)}), key))
    found = io.record_store.read_many(keys)
    assert [found[k] is not None for k in keys] == [i % 2 == 0 for i in range(len(keys))]
    assert found[keys[0]].data_version == version(get(s3, "lake/group/asset_000.json"))


def test_missing_bucket_is_an_error_not_never_materialized(s3):
    io = FsspecIOManager(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/lake", storage_options=options(s3.endpoint_url),
                         name="lake")
    with pytest.raises(AssetsError, match="the bucket does not exist.*fix base_uri"):
        io.record_store.read_many([ORDERS])
    with pytest.raises(AssetsError, match="the bucket does not exist"):
        io.record_store.read(ORDERS)
    with pytest.raises(AssetsError, match="the bucket does not exist"):  # not "never materialized"
        io.load_input(InputContext(ORDERS))
    with pytest.raises(AssetsError, match="the bucket does not exist"):
        io.handle_output(OutputContext(ORDERS), {"a": 1})


def test_wipe_removes_data_and_record_on_s3(s3):
    io = lake(s3)
    stored = io.handle_output(OutputContext(ORDERS), {"a": 1})
    io.record_store.write(record_of(stored))
    io.delete(ORDERS)
    assert object_keys(s3) == set()


def test_manager_pickles_without_its_filesystem_and_works_after(s3):
    io = lake(s3)
    clone = pickle.loads(pickle.dumps(io))
    clone.handle_output(OutputContext(ORDERS), {"via": "clone"})
    assert io.load_input(InputContext(ORDERS)) == {"via": "clone"}


# ---------------------------------------------------------------------------------------------
# Atomicity: real failures in the middle of uploads


@pytest.fixture
def proxy(s3) -> Iterator[FaultyProxy]:
    faulty = FaultyProxy(urlsplit(s3.endpoint_url).port)
    yield faulty
    faulty.close()


def through(proxy: FaultyProxy, s3, **more) -> FsspecIOManager:
    """An IO manager that reaches moto through the proxy, and gives up quickly when it breaks."""
    # No botocore retries (s3fs still retries five times): a cut request fails every time.
    return lake(s3, endpoint_url=proxy.endpoint_url, config_kwargs={"retries": {"max_attempts": 1}}, **more)


def pending_uploads(s3) -> list:
    return boto(s3).list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])


def test_put_cut_mid_body_leaves_the_previous_object(s3, proxy):
    io = through(proxy, s3)
    before = io.handle_output(OutputContext(ORDERS), {"version": 1})
    rule = proxy.cut(f"PUT /{s3.bucket}/lake/raw/orders.json".encode(), after=3000)
    with pytest.raises((AssetsError, OSError)) as failure:
        io.handle_output(OutputContext(ORDERS), {"version": 2, "padding": "x" * 100_000})
    assert rule.hits >= 2  # s3fs retried, and every attempt died halfway
    assert_no_secret(str(failure.value))
    proxy.clear()
    assert get(s3, "lake/raw/orders.json") == b'{"version": 1}'
    assert io.load_input(InputContext(ORDERS, record=record_of(before))) == {"version": 1}


def test_multipart_upload_cut_in_part_two_leaves_the_previous_object_and_no_upload(s3, proxy):
    io = through(proxy, s3, default_block_size=5 * 2**20)
    io.handle_output(OutputContext(ORDERS, format="pickle"), ["previous version"])
    rule = proxy.cut(b"partNumber=2&", after=2 * 2**20)  # 2 MiB into the second part
    payload = [os.urandom(3 * 2**20) for _ in range(5)]  # pickled in pieces: several parts
    with pytest.raises((AssetsError, OSError)) as failure:
        io.handle_output(OutputContext(ORDERS, format="pickle"), payload)
    assert rule.hits >= 2
    assert_no_secret(str(failure.value))
    proxy.clear()
    assert pickle.loads(get(s3, "lake/raw/orders.pkl")) == ["previous version"]
    assert pending_uploads(s3) == []  # the failed upload was aborted, not left to linger


def test_readers_see_the_old_object_until_the_upload_completes(s3, proxy):
    io = through(proxy, s3, default_block_size=5 * 2**20)
    io.handle_output(OutputContext(ORDERS), b"old")
    rule, release = proxy.hold(f"POST /{s3.bucket}/lake/raw/orders.bin?uploadId=".encode())
    new = os.urandom(12 * 2**20)
    writer = threading.Thread(target=io.handle_output, args=(OutputContext(ORDERS), new))
    writer.start()
    deadline = time.monotonic() + 60
    while not rule.hits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rule.hits == 1, "the upload never got to its completion request"
    # Every part is on the server; the object is not: readers get the previous version whole.
    assert pending_uploads(s3) and get(s3, "lake/raw/orders.bin") == b"old"
    release.set()
    writer.join(timeout=60)
    assert get(s3, "lake/raw/orders.bin") == new and pending_uploads(s3) == []


def test_encoder_failing_midway_publishes_nothing(s3):
    io = lake(s3, default_block_size=5 * 2**20)
    io.handle_output(OutputContext(ORDERS, format="pickle"), ["previous version"])

    class Explodes:
        def __reduce__(self):
            raise TypeError("cannot pickle this one")

    # 12 MiB go out as parts before pickle reaches the bad element.
    value = [os.urandom(3 * 2**20) for _ in range(4)] + [Explodes()]
    with pytest.raises(AssetsError, match="cannot be stored as pickle"):
        io.handle_output(OutputContext(ORDERS, format="pickle"), value)
    assert object_keys(s3) == {"lake/raw/orders.pkl"}
    assert pickle.loads(get(s3, "lake/raw/orders.pkl")) == ["previous version"]
    assert pending_uploads(s3) == []


def test_the_trap_we_avoid_an_fsspec_file_commits_on_error(s3):
    # Why storage.py never writes through ``with fs.open(...)``: the same failure there
    # publishes a truncated object. (If s3fs ever stops doing this, this test tells us.)
    fs = s3.filesystem()
    with pytest.raises(RuntimeError), fs.open(f"{s3.bucket}/naive.bin", "wb") as f:
        f.write(b"half of the data")
        raise RuntimeError("encoder failed")
    assert get(s3, "naive.bin") == b"half of the data"


# ---------------------------------------------------------------------------------------------
# Wrong credentials against a server that checks them


@pytest.fixture(scope="module")
def checking_s3() -> Iterator[dict]:
    """A moto server in its own process that checks signatures, with one IAM user allowed all.

    moto only authenticates after INITIAL_NO_AUTH_ACTION_COUNT requests; the first four create
    the user, its key, its policy and the bucket.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "moto did not start"
                time.sleep(0.05)
        anonymous = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "x",
                     "aws_secret_access_key": "x"}
        iam = boto3.client("iam", **anonymous)
        iam.create_user(UserName="pipeline")
        key = iam.create_access_key(UserName="pipeline")["AccessKey"]
        iam.put_user_policy(UserName="pipeline", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        boto3.client("s3", **anonymous).create_bucket(Bucket="checked-lake")
        yield {"endpoint_url": url, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"], "bucket": "checked-lake"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def lake_project(project, base_uri: str, storage_options: dict, assets=("paid_orders", "orders_by_customer")):
    """The example with a second IO manager ``lake`` holding the given (clean) assets."""
    config_file = project / "prefect_assets.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["io_managers"]["lake"] = {"base_uri": base_uri, "storage_options": storage_options,
                                     "options": {"parquet": {"compression": "zstd"}}}
    config_file.write_text(yaml.safe_dump(config))
    clean = project / "shop_assets" / "clean.py"
    source = clean.read_text()
    for name in assets:
        source = source.replace(f'@asset(group="clean")\ndef {name}(', f'@asset(group="clean", io_manager="lake")\ndef {name}(')
    clean.write_text(source)
    return project


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_wrong_secret_is_one_line_and_exit_2_not_missing(project, checking_s3, prefect_server):
    env = {"LAKE_KEY": checking_s3["key"], "LAKE_SECRET": SECRET}  # a real key id with the wrong secret
    lake_project(project, f"s3://{checking_s3['bucket']}/shop", {
        "endpoint_url": checking_s3["endpoint_url"], "key": "${LAKE_KEY}", "secret": "${LAKE_SECRET}",
        "config_kwargs": {"retries": {"max_attempts": 1}}})
    for command in (["status"], ["list"], ["materialize"]):
        result = run_cli(*command, cwd=project, env=env, api_url=prefect_server)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        line = one_line_error(result)
        assert "access denied" in line and "io_managers.lake.storage_options" in line, line
        assert f"s3://{checking_s3['bucket']}/shop/_prefect_assets/" in line
        assert_no_secret(result.stdout, result.stderr)
        assert "missing" not in result.stdout  # never reported as "never materialized"
    assert not (project / "data").exists()  # materialize stopped before any asset ran

    right = run_cli("status", cwd=project, env={**env, "LAKE_SECRET": checking_s3["secret"]})
    assert right.returncode == 0, right.stderr
    assert "missing" in right.stdout
    assert checking_s3["secret"] not in right.stdout + right.stderr


# ---------------------------------------------------------------------------------------------
# The example, end to end: one IO manager on S3, one local


def test_example_end_to_end_with_an_s3_and_a_local_io_manager(project, s3, prefect_server):
    lake_project(project, f"s3://{s3.bucket}/shop", {
        "endpoint_url": "${S3_ENDPOINT_URL}", "key": "${LAKE_KEY}", "secret": "${LAKE_SECRET}"})
    env = {"S3_ENDPOINT_URL": s3.endpoint_url, "LAKE_KEY": KEY, "LAKE_SECRET": SECRET}

    run = run_cli("materialize", cwd=project, env=env, api_url=prefect_server)
    assert run.returncode == 0, run.stdout + run.stderr
    assert_no_secret(run.stdout, run.stderr)
    flow_run_id = re.search(r"flow run ([0-9a-f-]{36})", run.stdout).group(1)
    assert_no_secret(*prefect_texts(flow_run_id))  # flow run, task runs, logs, summary artifact

    # On S3 (seen by boto3): the lake's assets and their records, nothing else.
    lake_keys = {"paid_orders", "orders_by_customer"}
    assert object_keys(s3) == {f"shop/{k}.parquet" for k in lake_keys} | {
        f"shop/_prefect_assets/records/{k}.json" for k in lake_keys}
    # On local disk: everything else, and its records beside it.
    data = project / "data"
    assert (data / "orders.parquet").is_file() and (data / "reports" / "kpis.json").is_file()
    assert not list(data.rglob("paid_orders*")) and not list(data.rglob("orders_by_customer*"))

    for key in lake_keys:
        body = get(s3, f"shop/{key}.parquet")
        record = json.loads(get(s3, f"shop/_prefect_assets/records/{key}.json"))
        # The record names exactly the bytes in the bucket.
        assert record["path"] == f"{key}.parquet"  # relative to the IO manager's base_uri
        assert (record["data_version"], record["bytes"]) == (version(body), len(body))
        assert pq.read_metadata(pa.BufferReader(body)).row_group(0).column(0).compression == "ZSTD"
        assert_no_secret(json.dumps(record))
    # A local asset read its input from S3, and recorded which version it read.
    daily = json.loads((data / "_prefect_assets" / "records" / "reports" / "daily_revenue.json").read_text())
    assert daily["input_versions"] == {"paid_orders": version(get(s3, "shop/paid_orders.parquet"))}

    status = run_cli("status", cwd=project, env=env)
    assert status.returncode == 0, status.stderr
    assert "stale" not in status.stdout and "missing" not in status.stdout
    assert_no_secret(status.stdout, status.stderr)

    # Change the code of `orders`: it and everything downstream, on S3 or not, is stale.
    raw = project / "shop_assets" / "raw.py"
    raw.write_text(raw.read_text().replace("random.Random(42)", "random.Random(43)"))
    status = run_cli("status", cwd=project, env=env)
    assert re.search(r"paid_orders\s.*stale \(upstream 'orders' is stale\)", status.stdout), status.stdout
    assert re.search(r"orders_by_customer\s.*stale", status.stdout), status.stdout
    before = get(s3, "shop/paid_orders.parquet")

    rerun = run_cli("materialize", "--stale", cwd=project, env=env, api_url=prefect_server)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = get(s3, "shop/paid_orders.parquet")
    assert after != before
    assert json.loads(get(s3, "shop/_prefect_assets/records/paid_orders.json"))["data_version"] == version(after)
    status = run_cli("status", cwd=project, env=env)
    assert "stale" not in status.stdout and "missing" not in status.stdout, status.stdout


def test_fsspec_environment_variables_configure_s3_for_the_cli(project, s3):
    # No storage_options at all: the endpoint and credentials come from fsspec's environment
    # configuration (FSSPEC_<PROTOCOL>_<OPTION>), read when fsspec is imported.
    lake_project(project, f"s3://{s3.bucket}/shop", {})
    env = {"FSSPEC_S3_ENDPOINT_URL": s3.endpoint_url, "FSSPEC_S3_KEY": KEY, "FSSPEC_S3_SECRET": SECRET}
    boto(s3).put_object(Bucket=s3.bucket, Key="shop/_prefect_assets/records/paid_orders.json", Body=b"{not json")
    result = run_cli("status", cwd=project, env=env)
    # The lake was reached (a record there was read, and found corrupt): the environment worked.
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"s3://{s3.bucket}/shop/_prefect_assets/records/paid_orders.json is not a valid materialization record" \
        in result.stderr
    assert_no_secret(result.stdout, result.stderr)
    boto(s3).delete_object(Bucket=s3.bucket, Key="shop/_prefect_assets/records/paid_orders.json")
    result = run_cli("status", cwd=project, env=env)
    assert result.returncode == 0 and "missing" in result.stdout, result.stderr
