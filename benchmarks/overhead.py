"""Per-asset overhead and client memory: prefect-assets vs the same graph written in plain Prefect.

A layered graph of N trivial assets (each reads two values of the layer above and returns one)
runs in every form below, each in a fresh child process against one running Prefect server:

* ``ours``: ``materialize(defs)`` (an async flow, its body in a thread): our scheduler, one
  Prefect task per asset, each value pickled to local disk with fsync by the IO manager, a
  materialization record per asset, Prefect's asset events with explicit lineage.
* ``ours-sync``: the same definitions as the sync flow ``defs.to_flow()`` that a user calls.
* ``task``: plain ``@task`` s as a Prefect user writes them, values passed in memory as futures;
  no storage, no records, no lineage. The issue's budget: ours <= 1.15x this.
* ``materialize``: Prefect's own ``@materialize(uri)`` tasks (``MaterializingTask``), values
  passed as futures (Prefect infers the upstream assets from them): the same asset events as
  ours, storing nothing. The issue's budget: ours <= 0.95x this.
* ``task-disk`` / ``materialize-disk`` (``--disk``): as above, but each task loads its inputs
  from pickle files and pickles its output to a file (no fsync): the same kind of disk work as
  ours, for reference.

Baselines run in a sync flow (what a Prefect user usually writes) and in an async flow whose
body runs in a thread with one shared sync API client, built the way ``materialize()`` runs
ours (the ``-async`` legs); ours in an async flow is compared with the async legs and
``ours-sync`` with the sync ones. Prefect's sync flow engine ends by joining a heartbeat
thread that sleeps in one-second steps, so sync times are rounded up to a whole second.

Every leg is a fresh ``python`` process: it imports everything, runs the same graph of 10
assets untimed (first-call costs: the API connection, the events worker), then times the run
of N assets and reports its seconds and the process's peak RSS (``ru_maxrss``). All use
``ThreadPoolTaskRunner(max_workers=W)`` (W defaults to 6, the thread runner's default on 2
cores). The server records task runs from their events after a run returns; before each leg
the benchmark waits until it has recorded every task run so far and gone idle, so no leg pays
for another's backlog. Rounds rotate the order of the legs. Prints the median of the rounds for
each leg, the ratios of the medians, the range of the per-round ratios, and the peak RSS; also
the client's CPU seconds in the timed run and the server's from the leg's start until idle.

Without ``--api-url`` the benchmark starts its own ``prefect server start`` on 127.0.0.1 and a
free port (PREFECT_HOME in a temporary directory, analytics off) and stops it at the end.

Run:  python benchmarks/overhead.py --sizes 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmark_server import count_task_runs, running_prefect_server, wait_until_idle
from layered import BY_ARITY, combine, layered_graph, upstream_pairs

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

#: Legs timed by default, in the order of the first round; ``--disk`` adds the disk ones.
LEGS = ["ours", "task-async", "materialize-async", "ours-sync", "task", "materialize"]
DISK_LEGS = ["task-disk-async", "materialize-disk-async"]
#: Which baseline each of ours is compared with.
PAIRS = [
    ("ours", "task-async"), ("ours", "materialize-async"),
    ("ours-sync", "task"), ("ours-sync", "materialize"),
    ("ours", "task-disk-async"), ("ours", "materialize-disk-async"),
]
WARM_UP_ASSETS = 10


# --- the legs, each run in a child process ---------------------------------------------------

def prepare_ours(ups: dict[str, list[str]], workers: int, folder: Path, asynchronous: bool):
    from prefect_assets import Definitions, asset, materialize
    from prefect_assets.io_managers import FsspecIOManager
    from prefect_assets.runner_registry import RunnerConfig

    defs = Definitions(
        [asset(BY_ARITY[len(p)], name=name, format="pickle", ins=dict(zip("ab", p))) for name, p in ups.items()],
        io_managers={"default": FsspecIOManager(str(folder))},
        runner=RunnerConfig(type="thread", max_workers=workers),
    )

    def check(result) -> None:
        assert result.success and len(result.by_status("materialized")) == len(ups), result.summary_rows()[:3]

    if asynchronous:
        return lambda: check(materialize(defs))
    results: list = []
    flow = defs.to_flow(results=results)
    return lambda: (flow(), check(results[0]))


def prepare_prefect(ups: dict[str, list[str]], workers: int, folder: Path, lineage: bool, asynchronous: bool,
                    disk: bool):
    from prefect import flow, task
    from prefect.assets import materialize
    from prefect.context import SyncClientContext
    from prefect.futures import wait
    from prefect.task_runners import ThreadPoolTaskRunner

    def uri(name: str) -> str:
        return f"file://{folder}/{name}"

    if disk:
        def work(name: str, parents: list[str]) -> None:
            values = [pickle.loads((folder / f"{p}.pkl").read_bytes()) for p in parents]
            (folder / f"{name}.pkl").write_bytes(pickle.dumps(combine(*values)))
    else:
        def work(*values: int) -> int:
            return combine(*values)

    # Tasks are made before the flow runs, as a user's module defines them at import time.
    if lineage:
        tasks = {
            name: materialize(uri(name), name=name, task_run_name=name,
                              **({"asset_deps": [uri(p) for p in ups[name]]} if disk else {}))(work)
            for name in ups
        }
    else:
        tasks = {name: task(work, name=name, task_run_name=name) for name in ups}

    def submit_and_wait() -> None:
        futures = {}
        for name, parents in ups.items():
            if disk:
                futures[name] = tasks[name].submit(name, parents, wait_for=[futures[p] for p in parents])
            else:
                futures[name] = tasks[name].submit(*[futures[p] for p in parents])
        wait(list(futures.values()))
        if not disk:
            assert all(f.state.is_completed() for f in futures.values())

    def in_thread() -> None:
        with SyncClientContext.get_or_create():  # one API client for all tasks, as a sync flow has
            submit_and_wait()

    async def submit_and_wait_in_thread() -> None:
        await asyncio.to_thread(in_thread)

    graph = flow(submit_and_wait_in_thread if asynchronous else submit_and_wait, name="plain-graph",
                 task_runner=ThreadPoolTaskRunner(max_workers=workers))
    run = (lambda: asyncio.run(graph())) if asynchronous else graph

    def run_and_check() -> None:
        run()
        if disk:
            assert len(list(folder.glob("*.pkl"))) == len(ups)

    return run_and_check


def prepare(leg: str, ups: dict[str, list[str]], workers: int, folder: Path):
    asynchronous = leg == "ours" or leg.endswith("-async")
    if leg.startswith("ours"):
        return prepare_ours(ups, workers, folder, asynchronous)
    return prepare_prefect(ups, workers, folder, lineage=leg.startswith("materialize"), asynchronous=asynchronous,
                           disk="-disk" in leg)


def child(leg: str, n: int, workers: int, profile: str | None) -> None:
    """Run ``leg`` once small (untimed), then on ``n`` assets (timed); print one JSON line."""
    base = Path(tempfile.mkdtemp(prefix=f"overhead-{leg}-"))
    try:
        (base / "warm").mkdir()
        (base / "run").mkdir()
        prepare(leg, upstream_pairs(layered_graph(WARM_UP_ASSETS)), workers, base / "warm")()
        run = prepare(leg, upstream_pairs(layered_graph(n)), workers, base / "run")
        cpu = time.process_time()
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.runcall(run)
            elapsed = time.perf_counter() - started
            profiler.dump_stats(profile)
        else:
            started = time.perf_counter()
            run()
            elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(json.dumps({"leg": leg, "seconds": elapsed, "cpu": cpu, "rss_mib": peak_kib / 1024}), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- the server ------------------------------------------------------------------------------

def cpu_seconds(pid: int | None) -> float:
    """CPU seconds used so far by process ``pid`` and its children (0 without a pid)."""
    import psutil

    if pid is None:
        return 0.0
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def run_leg(leg: str, n: int, workers: int, api_url: str) -> dict:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    done = subprocess.run(
        [sys.executable, __file__, "--child", leg, "--sizes", str(n), "--workers", str(workers)],
        env=env, capture_output=True, text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"leg {leg} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--legs", nargs="+", help=f"legs to time (default: {' '.join(LEGS)})")
    parser.add_argument("--disk", action="store_true", help="also time the disk-work baselines")
    parser.add_argument("--api-url", help="a running Prefect server's API URL (default: start one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help="with --child: write a cProfile of the timed run here")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.sizes[0], args.workers, args.profile)
        return

    legs = args.legs or LEGS + (DISK_LEGS if args.disk else [])
    with ExitStack() as stack:
        if args.api_url:
            api_url, server_pid = args.api_url, None
        else:
            api_url, server_pid = stack.enter_context(running_prefect_server("overhead-server-"))
        print(f"server {api_url}; {args.workers} worker threads; median of {args.rounds} rounds; "
              f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)
        task_runs = count_task_runs(api_url)
        for n in args.sizes:
            runs: dict[str, list[dict]] = {leg: [] for leg in legs}
            for round_ in range(args.rounds):
                shift = round_ % len(legs)
                for leg in legs[shift:] + legs[:shift]:
                    wait_until_idle(api_url, server_pid, task_runs)
                    server_cpu = cpu_seconds(server_pid)
                    outcome = run_leg(leg, n, args.workers, api_url)
                    task_runs += n + WARM_UP_ASSETS
                    wait_until_idle(api_url, server_pid, task_runs)
                    outcome["server_cpu"] = cpu_seconds(server_pid) - server_cpu
                    runs[leg].append(outcome)
                    print(f"  round {round_ + 1} {leg:>22}: {outcome['seconds']:6.2f} s "
                          f"(cpu {outcome['cpu']:6.2f} s), peak RSS {outcome['rss_mib']:6.1f} MiB, "
                          f"server cpu {outcome['server_cpu']:6.2f} s", flush=True)
            report(n, runs)
        wait_until_idle(api_url, server_pid, task_runs)


def report(n: int, runs: dict[str, list[dict]]) -> None:
    median = {leg: statistics.median(r["seconds"] for r in rs) for leg, rs in runs.items()}
    rss = {leg: statistics.median(r["rss_mib"] for r in rs) for leg, rs in runs.items()}
    print(f"\n{n} assets, median of {len(next(iter(runs.values())))} rounds:")
    cpu = {leg: statistics.median(r["cpu"] for r in rs) for leg, rs in runs.items()}
    server = {leg: statistics.median(r["server_cpu"] for r in rs) for leg, rs in runs.items()}
    print(f"{'leg':>24} {'seconds':>8} {'ms/asset':>9} {'client cpu s':>13} {'server cpu s':>13} {'peak RSS MiB':>13}")
    for leg in runs:
        print(f"{leg:>24} {median[leg]:8.2f} {median[leg] / n * 1000:9.2f} {cpu[leg]:13.2f} {server[leg]:13.2f} "
              f"{rss[leg]:13.1f}")
    print(f"{'ours vs':>24} {'ratio':>8} {'per-round range':>17} {'RSS ratio':>10}")
    for ours, base in PAIRS:
        if ours in runs and base in runs:
            per_round = sorted(a["seconds"] / b["seconds"] for a, b in zip(runs[ours], runs[base]))
            print(f"{ours + ' / ' + base:>24} {median[ours] / median[base]:8.2f} "
                  f"{per_round[0]:8.2f}-{per_round[-1]:<8.2f} {rss[ours] / rss[base]:10.2f}")
    print(flush=True)


if __name__ == "__main__":
    main()
