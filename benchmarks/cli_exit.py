"""How long ``prefect-assets materialize`` stays alive after printing its summary.

Runs the example project through the CLI ``--rounds`` times (fresh data each time) and times
the gap between the ``flow run <id>: <state>`` line and the process's exit, on the embedded
server (no ``PREFECT_API_URL``) or, with ``--api URL``, on a running ``prefect server start``.

    python benchmarks/cli_exit.py --rounds 5
    python benchmarks/cli_exit.py --rounds 5 --api http://127.0.0.1:4200/api

Prints min / median / max in seconds. The goal is under a second.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop"
SUMMARY_LINE = re.compile(r"flow run \S+: ")


def exit_delay(project: Path, env: dict[str, str]) -> float:
    """Seconds from the summary's last line to the process's exit, for one fresh run."""
    shutil.rmtree(project / "data", ignore_errors=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect_assets.cli", "materialize", "--project", str(project)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True, bufsize=1,
    )
    seen: list[float] = []

    def watch() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if not seen and SUMMARY_LINE.match(line):
                seen.append(time.monotonic())

    reader = threading.Thread(target=watch)
    reader.start()
    while process.poll() is None:
        time.sleep(0.005)
    ended = time.monotonic()
    reader.join()
    if process.returncode != 0 or not seen:
        raise SystemExit(f"materialize exited {process.returncode} without its summary")
    return ended - seen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--api", help="PREFECT_API_URL of a running server (default: the embedded one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-exit-") as scratch:
        project = Path(scratch) / "shop"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data", "__pycache__"))
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        if args.api:
            env["PREFECT_API_URL"] = args.api
        else:
            env["PREFECT_HOME"] = str(Path(scratch) / "prefect-home")
        delays = [exit_delay(project, env) for _ in range(args.rounds)]
    server = args.api or "embedded server"
    print(f"exit after summary ({server}, {len(delays)} runs): min {min(delays):.2f} s, "
          f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s")


if __name__ == "__main__":
    main()
