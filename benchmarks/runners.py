"""Runners on CPU-bound work: threads vs processes vs Dask, same project, one run.

The project in ``benchmarks/cpu_project`` has eight independent assets that each burn about
one second of pure-Python CPU (the loop size is calibrated on this machine first). It is
materialized with ``runner: thread``, ``process`` and ``dask`` (a local cluster), each with
two workers, through a real Prefect flow run against one Prefect server. Threads share one
GIL, so they take about eight seconds; two processes or two Dask workers should take about
four, plus the runner's start-up (forking the worker processes, a local Dask cluster's
scheduler and nannies, the process pool's set-up), which is part of every run and therefore
counted.

Each runner first runs once, untimed, and that first run's wall time is printed on its own:
it also pays, once per Python process, for starting the forkserver the workers fork from
(a process that imports Prefect; see ``prefect_assets/flows/warm_start.py``), and for the
first local Dask cluster, Dask's own imports in this process. The timed runs are what every
later run costs in a process that has done one (a notebook, a script materializing in a
loop). The CLI, one run per process, starts the forkserver as the run begins, so it warms up
while Prefect's ephemeral API server starts (10-20 s), which takes longer.

A fourth leg, ``dask@addr``, runs on a standing cluster, the way production Dask is run: a
two-worker ``LocalCluster`` with Dask's default settings, warmed by one untimed run, used through
``runner: {type: dask, address: ...}``. Its start-up and warm-up are not timed. It is started
before its leg and closed after it in every round, so the other legs never share the machine
with it: an idle two-worker cluster keeps about 14% of a core busy (its scheduler and nannies,
in this process, and its workers wake up on Dask's timers), which slowed every other leg, the
local Dask leg most (its own scheduler also runs in this process).

Prints each runner's wall time (best of ``--rounds``) and its speedup over threads (best over
best); the *paired* speedup, the median over rounds of thread time / runner time within the
same round; and the same for the *assets span*: from the first asset's start to the last one's
end, read from the records, which leaves out the runner's start-up and shutdown. Budget on two
cores: process and Dask >= 1.7x, judged on the paired speedup. A shared machine's speed drifts
by 20-30% from one minute to the next: the best thread round and the best runner round can come
from different minutes, while the legs of one round run within a minute of each other (every
other round in reverse order, so a drift within the round favours no leg).

Run:  python benchmarks/runners.py [--rounds 5] [--workers 2] [--runners thread process dask]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

PROJECT = Path(__file__).resolve().parent / "cpu_project"
BUDGET = 1.7


def calibrate(seconds: float = 1.0, samples: int = 5) -> int:
    """Loop iterations of ``cpu_assets.burn`` that take ``seconds`` of one idle core, here.

    The fastest of ``samples`` timings counts: a timing taken while something else had the
    core (the previous benchmark's server shutting down, say) would make every asset lighter
    and every runner look faster than it is.
    """
    sys.path.insert(0, str(PROJECT))
    from cpu_assets import burn

    n = 200_000
    while True:
        started = time.perf_counter()
        burn(n)
        if time.perf_counter() - started > 0.2:
            break
        n *= 2
    fastest = float("inf")
    for _ in range(samples):
        started = time.perf_counter()
        burn(n)
        fastest = min(fastest, time.perf_counter() - started)
    return int(n * seconds / fastest)


def run_once(runner: str, workers: int, address: str | None = None) -> tuple[float, float]:
    """Wall time of one ``materialize`` call, and the span from the first asset's start to the
    last asset's end (from the records), which leaves out the runner's start-up and shutdown."""
    from prefect_assets import Definitions, materialize
    from prefect_assets.runner_registry import RunnerConfig

    data = Path(tempfile.mkdtemp(prefix=f"bench-{runner}-"))
    os.environ["BENCH_DATA"] = str(data)
    try:
        defs = Definitions.load(PROJECT)
        if address is not None:  # a standing cluster: sized where it was started
            defs.runner = RunnerConfig(type=runner, address=address)
        started = time.perf_counter()
        result = materialize(defs, **({} if address else {"runner": runner, "max_workers": workers}))
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(data, ignore_errors=True)
    assert result.success and len(result.by_status("materialized")) == 8, result.summary_rows()
    ends = [datetime.fromisoformat(row.record.timestamp).timestamp() for row in result.assets]
    starts = [end - row.record.duration_seconds for end, row in zip(ends, result.assets)]
    return elapsed, max(ends) - min(starts)


@contextmanager
def standing_dask_cluster(workers: int) -> Iterator[str]:
    """The address of a ``LocalCluster`` of ``workers`` workers with Dask's defaults, after one untimed run
    on it (its workers have imported Prefect and the project, as a cluster that served earlier
    runs has); closed when the block ends."""
    import logging

    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster:
        run_once("dask", workers, cluster.scheduler_address)
        yield cluster.scheduler_address


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs per runner; the best counts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runners", nargs="+", default=["thread", "process", "dask"],
                        choices=["thread", "process", "dask", "ray"])
    args = parser.parse_args()
    runners = [r for r in args.runners if r in ("thread", "process") or importlib.util.find_spec(f"prefect_{r}")]
    if "thread" not in runners:
        runners.insert(0, "thread")

    os.environ["BENCH_WORK"] = str(calibrate())
    print(f"cores: {os.cpu_count()}, workers: {args.workers}, 8 assets x ~1 s of CPU each", flush=True)
    run_once("thread", args.workers)  # warm up the Prefect server and imports, untimed
    first = {runner: run_once(runner, args.workers)[0] for runner in runners if runner != "thread"}
    print("first run in this process (untimed): " + ", ".join(f"{r} {s:.2f} s" for r, s in first.items()), flush=True)
    legs = runners + ["dask@addr"] if "dask" in runners else runners
    wall: dict[str, list[float]] = {label: [] for label in legs}
    span: dict[str, list[float]] = {label: [] for label in legs}
    for round_number in range(args.rounds):
        # Every other round runs the legs backwards, so a machine that speeds up or slows
        # down during a round favours no runner in the paired ratios.
        for label in legs if round_number % 2 == 0 else legs[::-1]:
            if label == "dask@addr":
                with standing_dask_cluster(args.workers) as address:
                    elapsed, assets_span = run_once("dask", args.workers, address)
            else:
                elapsed, assets_span = run_once(label, args.workers)
            wall[label].append(elapsed)
            span[label].append(assets_span)

    print(f"{'runner':<10} {'wall s':>7} {'speedup':>8} {'paired':>7}   {'assets span s':>13} {'speedup':>8}")
    for label, seconds in wall.items():
        paired = statistics.median(thread / mine for thread, mine in zip(wall["thread"], seconds))
        verdict = "" if label == "thread" else ("  ok" if paired >= BUDGET else f"  below the {BUDGET}x budget")
        print(f"{label:<10} {min(seconds):>7.2f} {min(wall['thread']) / min(seconds):>7.2f}x {paired:>6.2f}x   "
              f"{min(span[label]):>13.2f} {min(span['thread']) / min(span[label]):>7.2f}x{verdict}", flush=True)

if __name__ == "__main__":
    main()
