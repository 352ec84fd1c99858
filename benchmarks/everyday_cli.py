"""What a user waits for every day: the CLI's whole-process times, against a running local server.

Starts its own local Prefect server (``prefect-assets server start`` on a free port, in a
temporary PREFECT_HOME, analytics off), then times cold ``prefect-assets`` processes:

* **example**: ``materialize`` of the example shop project (9 assets, fresh data each round):
  the first stored asset (its record appears under ``_prefect_assets/records/``), the
  summary's last line, and the process's exit, each from process start. Budgets: first
  asset <= 2 s, whole run <= 4 s, exit <= 0.3 s after the summary.
* **no-op**: on a generated 1000-asset project, already materialized: ``materialize --stale``
  with nothing stale and ``materialize --stale --dry-run``. Budget: <= 1.5 s each, and no flow
  run created (the server's flow-run count is compared before and after).

With ``--embedded`` the example is also timed on Prefect's embedded server (no local server,
``PREFECT_API_URL`` unset), the fallback a user gets without ``prefect-assets server start``.

``--untagged`` also times a copy of the example whose assets carry no tags. Prefect's task engine
asks the server for tag-based concurrency slots for every task run that has tags; on a SQLite
server those requests meet the run's own writes, the server answers 503 (``SQLITE_BUSY``), and
Prefect's client retries after 2 s, then 4 s: the difference between the two rows is that.

``--python`` runs the CLI with another interpreter, such as the quick start's venv (``pip install
-e .``): the development extras install pandas, and pyarrow imports pandas whenever it is
installed, as soon as the example's assets build their first table (0.4-0.5 s here), a cost of
the example's code in that venv, not of a user's install.

Each measure: one warm-up, then ``--rounds`` rounds; prints min / median / max.

    python benchmarks/everyday_cli.py --rounds 5 [--untagged] [--embedded] [--python VENV/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from large_project import layered, write_project  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "shop"
CLI = [sys.executable, "-m", "prefect_assets.cli"]  # --python replaces the interpreter
SUMMARY_LINE = re.compile(r"(flow run \S+: |all \d+ selected assets are fresh|dry run: )")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Timed:
    """One cold CLI process: seconds from its start to the first record in ``records``
    (if given), to its summary line, and to its exit."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, records: Path | None = None):
        self.first_record = self.summary = None
        started = time.monotonic()
        process = subprocess.Popen(CLI + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, bufsize=1)
        reader = threading.Thread(target=self._watch_output, args=(process, started))
        reader.start()
        while process.poll() is None:
            if records is not None and self.first_record is None and _has_file(records):
                self.first_record = time.monotonic() - started
            time.sleep(0.002)
        self.exit = time.monotonic() - started
        reader.join()
        self.stderr = process.stderr.read() if process.stderr else ""
        if process.returncode != 0 or self.summary is None:
            raise SystemExit(f"{' '.join(args)} exited {process.returncode}: {self.stderr[-2000:]}")

    def _watch_output(self, process: subprocess.Popen, started: float) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if SUMMARY_LINE.match(line):
                self.summary = time.monotonic() - started


def _has_file(folder: Path) -> bool:
    try:
        return any(entry.name.endswith(".json") for entry in os.scandir(folder))
    except FileNotFoundError:
        return False


def flow_run_count(api_url: str) -> int:
    request = urllib.request.Request(f"{api_url}/flow_runs/count", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.load(response))


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f} s"


def measure(label: str, rounds: int, once: Callable[[], Timed], fields: dict[str, Callable[[Timed], float]],
            budgets: dict[str, float]) -> None:
    once()  # warm-up: the page cache, Python's bytecode cache, the code-version cache
    runs = [once() for _ in range(rounds)]
    for name, pick in fields.items():
        values = [pick(run) for run in runs]
        budget = budgets.get(name)
        verdict = "" if budget is None else (
            f"   budget {budget:g} s: {'met' if statistics.median(values) <= budget else 'MISSED'}")
        print(f"{label:<34} {name:<22} min/median/max {spread(values)}{verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--assets", type=int, default=1000, help="size of the no-op project")
    parser.add_argument("--embedded", action="store_true", help="also time the example on the embedded server")
    parser.add_argument("--untagged", action="store_true", help="also time the example without asset tags")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs prefect-assets")
    args = parser.parse_args()
    CLI[0] = args.python

    scratch = Path(tempfile.mkdtemp(prefix="everyday-cli-"))
    base_env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SHOP_DATA")}
    base_env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_ASSETS_CACHE_DIR=str(scratch / "cache"))
    env = {**base_env, "PREFECT_HOME": str(scratch / "home")}
    port = free_port()
    subprocess.run(CLI + ["server", "start", "--port", str(port)], env=env, check=True, stdout=subprocess.DEVNULL)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        example = scratch / "shop"
        shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("data", "__pycache__"))

        def example_run(run_env: dict[str, str], folder: Path = example) -> Callable[[], Timed]:
            def once() -> Timed:
                shutil.rmtree(folder / "data", ignore_errors=True)
                return Timed(["materialize"], run_env, folder, records=folder / "data" / "_prefect_assets" / "records")
            return once

        fields = {
            "first stored asset": lambda t: t.first_record,
            "whole run": lambda t: t.exit,
            "exit after summary": lambda t: t.exit - t.summary,
        }
        budgets = {"first stored asset": 2.0, "whole run": 4.0, "exit after summary": 0.3}
        measure("example, local server", args.rounds, example_run(env), fields, budgets)
        if args.untagged:
            untagged = scratch / "shop-untagged"
            shutil.copytree(example, untagged)
            for module in (untagged / "shop_assets").glob("*.py"):
                module.write_text(re.sub(r", tags=\{[^}]*\}", "", module.read_text()))
            measure("example without tags, local server", args.rounds, example_run(env, untagged), fields, budgets)
        if args.embedded:
            embedded_env = {**base_env, "PREFECT_HOME": str(scratch / "embedded-home")}
            measure("example, embedded server", args.rounds, example_run(embedded_env), fields, {})

        project = scratch / f"p{args.assets}"
        write_project(project, f"p{args.assets}", layered(args.assets, 20, 10), 10)
        Timed(["materialize"], env, project)  # everything stored and fresh from here on
        for label, extra in (("--stale, nothing stale", ["--stale"]), ("--stale --dry-run", ["--stale", "--dry-run"])):
            before = flow_run_count(api_url)
            measure(f"{args.assets} assets, {label}", args.rounds,
                    lambda extra=extra: Timed(["materialize", *extra], env, project),
                    {"whole process": lambda t: t.exit}, {"whole process": 1.5})
            created = flow_run_count(api_url) - before
            print(f"{'':<34} flow runs created: {created}", flush=True)
    finally:
        subprocess.run(CLI + ["server", "stop"], env=env, stdout=subprocess.DEVNULL)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
