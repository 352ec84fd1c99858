"""Per-asset overhead: prefect-assets vs the same graph written as plain Prefect tasks.

A layered graph of N trivial assets (each reads two upstream values and writes its own) runs
twice per round in one process against one Prefect server:

* **prefect-assets**: ``materialize(defs)``: our scheduler, one task per asset, values
  pickled to local disk by the IO manager, plus a materialization record per asset.
* **hand-written Prefect**: one ``@task`` per node submitted with ``wait_for`` on its upstream
  futures, each loading its inputs from pickle files and pickling its output: the same disk
  work, without records, versions or lineage. The budget (ratio <= 1.10) is against this one.
* **hand-written Prefect ``@materialize``**: the same tasks as Prefect ``MaterializingTask`` s
  with their asset URI and upstream ``asset_deps``, so Prefect emits the same asset events
  (lineage) ours does: the like-for-like cost of what a Prefect user writes to get lineage.

Each baseline runs twice: in a sync flow (what a Prefect user usually writes) and in an async
flow whose body runs in a thread, the way ``materialize()`` runs ours. Prefect 3.8 ends a sync
flow run by joining a heartbeat thread that sleeps in one-second steps, so a sync run is
rounded up to a whole second; the async columns compare like with like.

All use ``ThreadPoolTaskRunner(max_workers=W)``. The Prefect server records task runs
asynchronously, so before each timed run the benchmark waits until the server has recorded
every task run so far: each side starts on an idle server instead of paying for the other's
backlog. Rounds rotate the order; the best time of each side is compared. Prints seconds and the
ratios (budget: <= 1.10 against plain tasks).

Run:  python benchmarks/overhead.py --sizes 200 1000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.context import SyncClientContext  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402
from prefect.tasks import MaterializingTask  # noqa: E402

from prefect_assets import Definitions, asset, materialize  # noqa: E402
from prefect_assets.config import RunnerConfig  # noqa: E402
from prefect_assets.io_managers import FsspecIOManager  # noqa: E402


def layered_graph(n: int) -> list[list[str]]:
    """Node names in layers; every node after the first layer reads two nodes of the layer above."""
    width = max(1, int(round(n ** 0.5)))
    names = [f"n{i}" for i in range(n)]
    return [names[i:i + width] for i in range(0, n, width)]


def upstream_pairs(layers: list[list[str]]) -> dict[str, list[str]]:
    ups: dict[str, list[str]] = {}
    for depth, layer in enumerate(layers):
        above = layers[depth - 1] if depth else []
        for i, name in enumerate(layer):
            ups[name] = sorted({above[i % len(above)], above[(i + 1) % len(above)]}) if above else []
    return ups


def combine(*values: int) -> int:
    return sum(values) + 1


def asset_definitions(ups: dict[str, list[str]]) -> list:
    def root() -> int:
        return combine()

    def one(a: int) -> int:
        return combine(a)

    def two(a: int, b: int) -> int:
        return combine(a, b)

    by_arity = [root, one, two]
    return [
        asset(by_arity[len(parents)], name=name, format="pickle", ins=dict(zip("ab", parents)))
        for name, parents in ups.items()
    ]


def run_prefect_assets(ups: dict[str, list[str]], workers: int, folder: Path) -> float:
    defs = Definitions(
        asset_definitions(ups),
        io_managers={"default": FsspecIOManager(str(folder))},
        runner=RunnerConfig(type="thread", max_workers=workers),
    )
    started = time.perf_counter()
    result = materialize(defs)
    elapsed = time.perf_counter() - started
    assert result.success and len(result.by_status("materialized")) == len(ups), result.summary_rows()[:3]
    return elapsed


def run_plain_prefect(ups: dict[str, list[str]], workers: int, folder: Path, lineage: bool = False,
                      asynchronous: bool = False) -> float:
    def work(name: str, parents: list[str]) -> None:
        values = [pickle.loads((folder / f"{p}.pkl").read_bytes()) for p in parents]
        (folder / f"{name}.pkl").write_bytes(pickle.dumps(combine(*values)))

    def uri(name: str) -> str:
        return f"file://{folder}/{name}"

    def node_task(name: str, parents: list[str]):
        if lineage:  # what @materialize(uri, asset_deps=[...]) builds
            return MaterializingTask(work, assets=[uri(name)], asset_deps=[uri(p) for p in parents],
                                     task_run_name=name, cache_policy=NO_CACHE, persist_result=False)
        return task(work, task_run_name=name, cache_policy=NO_CACHE, persist_result=False)

    def submit_and_wait() -> None:
        futures = {}
        for name, parents in ups.items():
            futures[name] = node_task(name, parents).submit(name, parents, wait_for=[futures[p] for p in parents])
        for future in futures.values():
            future.wait()

    def in_thread() -> None:
        with SyncClientContext.get_or_create():  # one API client for all tasks, as a sync flow has
            submit_and_wait()

    async def submit_and_wait_in_thread() -> None:
        await asyncio.to_thread(in_thread)

    plain_graph = flow(submit_and_wait_in_thread if asynchronous else submit_and_wait, name="plain-graph",
                       task_runner=ThreadPoolTaskRunner(max_workers=workers), persist_result=False)
    run = (lambda: asyncio.run(plain_graph())) if asynchronous else plain_graph

    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    assert len(list(folder.glob("*.pkl"))) == len(ups)
    return elapsed


def wait_for_server_to_catch_up(expected_task_runs: int, timeout: float = 600) -> None:
    """Block until the server has recorded ``expected_task_runs`` task runs and gone idle.

    The server (a child process) keeps working through a run's events after the run returns;
    a run timed then would pay for its predecessor's backlog.
    """
    import psutil
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if client.request("POST", "/task_runs/count", json={}).json() >= expected_task_runs:
                break
            time.sleep(0.5)
    servers = psutil.Process().children(recursive=True)
    for server in servers:
        server.cpu_percent(interval=None)  # the first call only starts psutil's measurement
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        busy = sum(p.cpu_percent(interval=None) for p in servers)
        quiet = quiet + 1 if busy < 5 else 0


#: What is timed, in the order of the first round: label -> (column heading, run).
LEGS = {
    "ours": ("prefect-assets s", run_prefect_assets),
    "task": ("@task sync", run_plain_prefect),
    "task-async": ("@task async", partial(run_plain_prefect, asynchronous=True)),
    "materialize": ("@materialize sync", partial(run_plain_prefect, lineage=True)),
    "materialize-async": ("@materialize async", partial(run_plain_prefect, lineage=True, asynchronous=True)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    # Warm up the server and every code path once, untimed.
    with tempfile.TemporaryDirectory() as tmp:
        small = upstream_pairs(layered_graph(20))
        for label, (_, run) in LEGS.items():
            Path(tmp, label).mkdir()
            run(small, args.workers, Path(tmp, label))
    task_runs = len(LEGS) * 20

    baselines = [label for label in LEGS if label != "ours"]
    print(f"{'assets':>7} {LEGS['ours'][0]:>17}" + "".join(f" {LEGS[b][0]:>19} {'ratio':>6}" for b in baselines))
    for n in args.sizes:
        ups = upstream_pairs(layered_graph(n))
        times: dict[str, list[float]] = {label: [] for label in LEGS}
        for round_ in range(args.rounds):
            order = list(LEGS.items())
            shift = round_ % len(order)
            for label, (_, run) in order[shift:] + order[:shift]:
                folder = Path(tempfile.mkdtemp(prefix=f"overhead-{label}-"))
                wait_for_server_to_catch_up(task_runs)
                try:
                    times[label].append(run(ups, args.workers, folder))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                task_runs += n
        best = {label: min(seconds) for label, seconds in times.items()}
        print(f"{n:>7} {best['ours']:>17.2f}"
              + "".join(f" {best[b]:>19.2f} {best['ours'] / best[b]:>6.2f}" for b in baselines), flush=True)
    # Let the server record the last run before this process (and the server with it) exits:
    # otherwise its shutdown cancels the recording mid-write and prints the tracebacks.
    wait_for_server_to_catch_up(task_runs)


if __name__ == "__main__":
    main()
