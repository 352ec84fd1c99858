"""What committing data and record as one costs per store, against writing them one after the other.

Both sides write the same small JSON value and its record atomically, with fsync, to local disk:

* **plain**: ``handle_output`` (stage + publish) then ``RecordStore.write``, what 0.2.0 did;
* **commit**: :func:`~prefect_assets.io_managers.commit.commit_output`: the asset's lock, a check
  for a store to settle, a pending record, publish, record, pending record removed.

Rounds alternate the sides; prints milliseconds per store (min and median) and the difference.

Run:  python benchmarks/commit_cost.py --assets 300 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from prefect_assets.assets.keys import AssetKey
from prefect_assets.io_managers import FsspecIOManager, MaterializationRecord, OutputContext
from prefect_assets.io_managers.commit import commit_output


def _record(stored, key: AssetKey) -> MaterializationRecord:
    return MaterializationRecord(
        key=str(key), partition=None, run_id=None, timestamp="2026-01-01T00:00:00+00:00", code_version="c",
        input_versions={}, data_version=stored.data_version, format=stored.format, path=stored.path,
        bytes=stored.bytes, rows=stored.rows, identity=stored.identity,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    io = FsspecIOManager(tempfile.mkdtemp(prefix="commit-cost-"))
    keys = [AssetKey.parse(f"asset_{i}") for i in range(args.assets)]

    def plain() -> None:
        for key in keys:
            io.record_store.write(_record(io.handle_output(OutputContext(key), {"v": 1}), key))

    def commit() -> None:
        for key in keys:
            commit_output(io, io.record_store, OutputContext(key), {"v": 1}, lambda stored, key=key: _record(stored, key))

    timings: dict[str, list[float]] = {"plain": [], "commit": []}
    for _ in range(args.rounds):
        for name, side in (("plain", plain), ("commit", commit)):
            started = time.perf_counter()
            side()
            timings[name].append((time.perf_counter() - started) / len(keys) * 1000)
    for name, values in timings.items():
        print(f"{name:7} {min(values):.2f} ms per store (min), {statistics.median(values):.2f} (median)")
    print(f"commit costs {min(timings['commit']) - min(timings['plain']):+.2f} ms per store (min against min)")


if __name__ == "__main__":
    main()
