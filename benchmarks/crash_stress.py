"""Crash stress: hundreds of SIGKILLs per backend against a materialization of a ~20 MB asset.

The same harness as ``tests/test_crash.py`` (``tests/crash_harness.py``), with more kills. Half
land at a random instant after the large asset starts computing (encoding, staging, publishing,
recording, or its downstream running), half the instant its file has been published and before
its record is written. After each kill the state is settled as the next reader does and every
asset is checked: its stored bytes are the ones its record names, and the downstream summary
holds the checksum of the table its record says it saw. At the end ``materialize --stale``
must finish the work, and nothing a killed writer left may remain.

Needs nothing running: starts ``prefect server start`` and a moto S3 server on 127.0.0.1.

Run:  python benchmarks/crash_stress.py --kills 200 --backends local s3
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.crash_harness import cli, kill_series, leftovers, make_project, manager, status_lines  # noqa: E402
from tests.prefect_server_process import healthy, start_process, stop_process, tail  # noqa: E402

WINDOW = {"local": 2.0, "s3": 4.0}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prefect_server(home: Path):
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    server = start_process([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                            "--port", str(port)], env, log)
    deadline = time.monotonic() + 180
    while not healthy(api_url):
        if server.poll() is not None or time.monotonic() > deadline:
            stop_process(server)
            raise SystemExit(f"prefect server did not start:\n{tail(log)}")
        time.sleep(0.5)
    return server, api_url


def _s3_backend():
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="stress")
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing", "default_block_size": 5 * 2**20}
    return moto, "s3://stress/crash", options


def run_backend(name: str, kills: int, api_url: str, work: Path, seed: int) -> dict:
    moto = None
    if name == "s3":
        moto, base, options = _s3_backend()
        project = make_project(work / name, base, options)
        io = manager(base, options)
    else:
        project = make_project(work / name, "./data")
        io = manager(str(project / "data"))
    env = {"PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    try:
        started = time.monotonic()
        tally = kill_series(project, io, env, kills, WINDOW[name], seed, progress=lambda t: print(
            f"  {name}: {t.runs} runs, {t.kills} kills, {len(t.problems)} problems", flush=True))
        for problem in tally.problems:
            print(f"  {problem}", flush=True)
        final = cli(project, "materialize", "--stale", env=env)
        final_output = final.communicate(timeout=600)[0]
        statuses = status_lines(project, env)
        remaining = leftovers(io)
        return {
            "backend": name, "runs": tally.runs, "kills": tally.kills,
            "finished before the kill": tally.finished_before_the_kill,
            "settled (rolled forward or back)": tally.settled_pending,
            "inconsistent assets": len(tally.problems),
            "leftovers seen right after kills": tally.leftovers_right_after_kills,
            "--stale exit": final.returncode,
            "statuses after --stale": statuses,
            "leftovers after the next run": len(remaining),
            "minutes": round((time.monotonic() - started) / 60, 1),
            **({"--stale output": final_output} if final.returncode else {}),
        }
    finally:
        if moto is not None:
            moto.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="kills per backend")
    parser.add_argument("--backends", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    work = Path(tempfile.mkdtemp(prefix="crash-stress-"))
    server, api_url = _prefect_server(work)
    try:
        for backend in args.backends:
            result = run_backend(backend, args.kills, api_url, work, args.seed)
            print(" | ".join(f"{k}: {v}" for k, v in result.items()), flush=True)
    finally:
        stop_process(server)


if __name__ == "__main__":
    main()
