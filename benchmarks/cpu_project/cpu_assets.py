"""Eight independent assets, each burning about a second of pure-Python CPU.

``BENCH_WORK`` (set by ``benchmarks/runners.py`` after timing this machine) is the number of
loop iterations that take one second; it is read when the asset runs, so every worker process
(which inherits the environment) does the same amount of work.
"""

import os

from prefect_assets import asset


def burn(iterations: int) -> int:
    """Pure-Python arithmetic: holds the GIL the whole time, like most asset code."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


def work() -> int:
    return burn(int(os.environ.get("BENCH_WORK", "5000000")))


@asset
def cpu_0() -> int:
    return work()


@asset
def cpu_1() -> int:
    return work()


@asset
def cpu_2() -> int:
    return work()


@asset
def cpu_3() -> int:
    return work()


@asset
def cpu_4() -> int:
    return work()


@asset
def cpu_5() -> int:
    return work()


@asset
def cpu_6() -> int:
    return work()


@asset
def cpu_7() -> int:
    return work()
