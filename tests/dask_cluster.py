"""A real Dask cluster for the tests: ``dask scheduler`` plus two ``dask worker`` processes.

Started once per session on 127.0.0.1 only, the way an operator would start one: separate
processes, with a working directory of their own (so project modules are *not* importable from
the cwd), and the moto S3 credentials in their environment so they can reach shared storage.
Every wait is bounded; every process is killed on the way out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 15
    for proc in processes:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def dask_scheduler_address() -> Iterator[str]:
    """``tcp://127.0.0.1:<port>`` of a scheduler with two single-threaded workers attached."""
    pytest.importorskip("prefect_dask")
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    workdir = tempfile.mkdtemp(prefix="dask-workers-")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    logs = open(os.path.join(workdir, "cluster.log"), "wb")  # noqa: SIM115 - closed in finally
    processes: list[subprocess.Popen] = []
    try:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", f"127.0.0.1:{_free_port()}"],
            cwd=workdir, env=env, stdout=logs, stderr=subprocess.STDOUT,
        ))
        for _ in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                 "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
                cwd=workdir, env=env, stdout=logs, stderr=subprocess.STDOUT,
            ))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        _stop(processes)
        logs.close()
