"""Shared fixtures: a real Prefect server, a real S3 endpoint, and a CLI runner.

The environment is set before anything imports Prefect: each test session gets its own
PREFECT_HOME (so parallel sessions never share a database) and code-version cache, no
analytics (no network here), and a generous ephemeral-server startup timeout for cold 2-core
machines.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_HOME = tempfile.mkdtemp(prefix="prefect-assets-tests-")
os.environ["PREFECT_HOME"] = _SESSION_HOME
# Code versions are cached per machine (~/.cache/prefect-assets); the tests keep their own.
os.environ["PREFECT_ASSETS_CACHE_DIR"] = os.path.join(_SESSION_HOME, "code-version-cache")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_URL", None)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "shop"

# tests.oldest_prefect: builds the venv with the oldest Prefect we support, in the background (its test
# is tests/test_prefect_versions.py).
pytest_plugins = ["tests.s3_server", "tests.prefect_server_process", "tests.dask_cluster", "tests.oldest_prefect"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One Prefect test server (``prefect_test_harness``) for the whole session; yields its API URL.

    Tests that run flows in-process use it through Prefect's settings; CLI subprocesses get the
    URL through ``PREFECT_API_URL`` (see :func:`run_cli`).
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the example shop project, with its data under ``tmp_path``."""
    target = tmp_path / "shop"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return target


def run_cli(*args: str, cwd: Path | None = None, api_url: str | None = None, env: dict | None = None,
            timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess:  # noqa: A002
    """Run ``prefect-assets ARGS`` in a subprocess, as a user would, and capture its output.

    ``input`` is typed at its prompts; without it, its standard input is closed.
    """
    full_env = {**os.environ, **(env or {})}
    if api_url:
        full_env["PREFECT_API_URL"] = api_url
    return subprocess.run(
        [sys.executable, "-m", "prefect_assets.cli", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
        input=input, stdin=None if input is not None else subprocess.DEVNULL,
    )
