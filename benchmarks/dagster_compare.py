"""prefect-assets vs Dagster: the same asset graph, materialized by each, timed around ``materialize``.

The graph is ``overhead.py``'s layered graph (``benchmarks/layered.py``): N trivial
assets in layers of ~sqrt(N), each after the first layer reading two assets of the layer above and
returning a small int (the sum of its inputs plus one). Both sides store every value as a pickle on
local disk and load the inputs from there.

* **prefect-assets**: ``materialize(defs)`` with the local-disk IO manager (``FsspecIOManager``,
  ``format="pickle"``) and Prefect's thread runner (``--workers``, default 8), as
  ``overhead.py`` runs it: one Prefect task per asset, a record per materialization, Prefect's asset
  events. It talks to a real ``prefect server start`` that this script starts on 127.0.0.1 and a
  free port, with its own ``PREFECT_HOME`` in a temporary folder and analytics off, and stops at the
  end. Runs in this interpreter's environment (the dev venv).
* **Dagster**: ``dagster.materialize(assets, resources={"io_manager": FilesystemIOManager(base_dir=...)})``.
  ``materialize`` runs the job with Dagster's in-process executor (``execute_in_process``: one
  thread, steps one after another) against an ephemeral in-memory ``DagsterInstance``; both are its
  defaults and are kept. Dagster is never a dependency of prefect-assets or its tests: this script
  creates a throwaway venv for it (default ``$XDG_CACHE_HOME/prefect-assets/benchmark-venvs/dagster-<version>``,
  ``~/.cache`` without ``XDG_CACHE_HOME``; ``--dagster-venv`` to choose; delete it when done),
  upgrades pip there, installs the pinned ``dagster`` and reuses it on later runs.

Each timed run is a fresh child process (this same file with ``--child``): imports, definitions
and, for prefect-assets, the API client are set up first, and the child times only
``materialize`` itself, from just before the call to just after it returns; both sides' logging is
left at its defaults except Prefect's at WARNING, as in ``overhead.py``. Child output goes to a log
file, not the terminal. The parent also times each child from spawn to exit (whole process:
interpreter start, imports, run, exit), printed as a second table.

Rounds alternate the order of the two sides. After every prefect-assets run the script waits until
the server has recorded all its task runs and its CPU use has settled, so that Dagster's run never
shares the two cores with the server's backlog. One small untimed run per side warms up the server
and the file cache first. Prints min / median / max seconds per side, milliseconds per asset (median
/ N), and the ratio of the medians, Dagster / prefect-assets (above 1: prefect-assets is faster).

Run (from the repository root, in the dev venv):

    python benchmarks/dagster_compare.py --sizes 200 1000 --rounds 5

Only the standard library (and ``layered.py``, which uses nothing else) is imported at module level:
the Dagster child runs this file in the Dagster venv, where neither Prefect nor prefect-assets is
installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from layered import BY_ARITY, layered_graph, upstream_pairs

DAGSTER_VERSION = "1.13.29"
SIDES = ("prefect-assets", "dagster")


# --- the children: build the graph, time materialize(), write the seconds to --out -------------

def child_prefect_assets(ups: dict[str, list[str]], folder: Path, workers: int) -> float:
    """The graph as prefect-assets assets; ``materialize(defs)`` timed (as in ``overhead.py``)."""
    from prefect_assets import Definitions, asset, materialize
    from prefect_assets.io_managers import FsspecIOManager
    from prefect_assets.runner_registry import RunnerConfig

    defs = Definitions(
        [asset(BY_ARITY[len(parents)], name=name, format="pickle", ins=dict(zip("ab", parents)))
         for name, parents in ups.items()],
        io_managers={"default": FsspecIOManager(str(folder))},
        runner=RunnerConfig(type="thread", max_workers=workers),
    )

    started = time.perf_counter()
    result = materialize(defs)
    elapsed = time.perf_counter() - started
    assert result.success and len(result.by_status("materialized")) == len(ups), result.summary_rows()[:3]
    return elapsed


def child_dagster(ups: dict[str, list[str]], folder: Path, workers: int) -> float:
    """The same graph as Dagster assets, ``materialize`` with the filesystem IO manager, timed."""
    import dagster as dg

    assets = [
        dg.asset(name=name, ins={param: dg.AssetIn(key=parent) for param, parent in zip("ab", parents)})(
            BY_ARITY[len(parents)]
        )
        for name, parents in ups.items()
    ]
    io_manager = dg.FilesystemIOManager(base_dir=str(folder))

    started = time.perf_counter()
    result = dg.materialize(assets, resources={"io_manager": io_manager})
    elapsed = time.perf_counter() - started
    assert result.success and len(result.get_asset_materialization_events()) == len(ups)
    return elapsed


CHILDREN = {"prefect-assets": child_prefect_assets, "dagster": child_dagster}


def run_child(side: str, graph: Path, folder: Path, workers: int, out: Path) -> None:
    ups = json.loads(graph.read_text())
    seconds = CHILDREN[side](ups, folder, workers)
    out.write_text(json.dumps({"seconds": seconds}))


# --- the parent: environments, server, rounds, figures ---------------------------------------

def dagster_python(venv: Path) -> Path:
    """The venv's interpreter with ``dagster==DAGSTER_VERSION``, creating the venv if needed."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import dagster, sys; sys.exit(dagster.__version__ != {DAGSTER_VERSION!r})"]
    if python.exists() and subprocess.run(check, check=False, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with dagster=={DAGSTER_VERSION} (once; takes a minute or two)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"dagster=={DAGSTER_VERSION}"], check=True)
    subprocess.run(check, check=True)
    return python


def timed_child(python: Path, side: str, graph: Path, workers: int, env: dict[str, str],
                work: Path) -> tuple[float, float]:
    """Run one child; return (seconds inside ``materialize``, seconds from spawn to exit)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{side}-", dir=work))
    out = folder / "result.json"
    log = work / f"{side}.log"
    args = [str(python), str(Path(__file__).resolve()), "--child", side, "--graph", str(graph),
            "--folder", str(folder / "data"), "--workers", str(workers), "--out", str(out)]
    try:
        with open(log, "ab") as log_file:
            started = time.perf_counter()
            code = subprocess.run(args, env=env, stdout=log_file, stderr=subprocess.STDOUT, check=False).returncode
            wall = time.perf_counter() - started
        if code != 0:
            lines = log.read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError(f"{side} child exited with {code}:\n" + "\n".join(lines))
        return json.loads(out.read_text())["seconds"], wall
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def summary(n: int, times: dict[str, list[float]]) -> str:
    medians = {side: statistics.median(times[side]) for side in SIDES}
    cells = "".join(
        f" | {f'{min(times[side]):.2f} / {medians[side]:.2f} / {max(times[side]):.2f} s':<26}"
        f" {f'{medians[side] / n * 1000:.1f}':>8}"
        for side in SIDES
    )
    return f"{n:>6}{cells} | {medians['dagster'] / medians['prefect-assets']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8, help="prefect-assets' thread pool size")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    parser.add_argument("--dagster-venv", type=Path,
                        default=cache / "prefect-assets" / "benchmark-venvs" / f"dagster-{DAGSTER_VERSION}")
    # Internal: one timed run in a child process.
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--graph", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args.child, args.graph, args.folder, args.workers, args.out)

    pythons = {"prefect-assets": Path(sys.executable), "dagster": dagster_python(args.dagster_venv)}
    # Only here: the Dagster venv has neither Prefect nor prefect-assets.
    import prefect
    from benchmark_server import running_prefect_server, wait_until_idle

    work = Path(tempfile.mkdtemp(prefix="dagster-compare-"))
    try:
        with running_prefect_server("dagster-compare-server-") as (api_url, server_pid):
            envs = {
                "prefect-assets": {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "WARNING",
                                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
                "dagster": {**os.environ, "DAGSTER_HOME": str(work)},  # unused by materialize; keeps ~ clean
            }
            print(f"prefect {prefect.__version__} (server {api_url}, thread pool of {args.workers}) "
                  f"vs dagster {DAGSTER_VERSION} (in-process executor)", flush=True)
            task_runs = 0

            def run(side: str, n: int, graph: Path) -> tuple[float, float]:
                nonlocal task_runs
                result = timed_child(pythons[side], side, graph, args.workers, envs[side], work)
                if side == "prefect-assets":
                    task_runs += n
                    wait_until_idle(api_url, server_pid, task_runs)
                return result

            warm_up = work / "graph-20.json"
            warm_up.write_text(json.dumps(upstream_pairs(layered_graph(20))))
            for side in SIDES:
                run(side, 20, warm_up)

            header = (f"{'assets':>6} | {'prefect-assets min/med/max':<26} {'ms/asset':>8}"
                      f" | {'Dagster min/med/max':<26} {'ms/asset':>8} | Dagster / prefect-assets (medians)")
            inside, whole = [header], [header]
            for n in args.sizes:
                graph = work / f"graph-{n}.json"
                graph.write_text(json.dumps(upstream_pairs(layered_graph(n))))
                times: dict[str, list[float]] = {side: [] for side in SIDES}
                walls: dict[str, list[float]] = {side: [] for side in SIDES}
                for round_ in range(args.rounds):
                    for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
                        seconds, wall = run(side, n, graph)
                        times[side].append(seconds)
                        walls[side].append(wall)
                        print(f"  {n} assets, round {round_ + 1}: {side} {seconds:.2f} s "
                              f"(whole process {wall:.2f} s)", flush=True)
                inside.append(summary(n, times))
                whole.append(summary(n, walls))
                print(inside[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\nmaterialize() only:")
    print("\n".join(inside))
    print("\nwhole child process (interpreter start, imports, run, exit):")
    print("\n".join(whole))


if __name__ == "__main__":
    main()
