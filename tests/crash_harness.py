"""Kill materializations of a large asset with SIGKILL and check what each kill left behind.

Shared by ``tests/test_crash.py`` (a few dozen kills in CI) and ``benchmarks/crash_stress.py``
(hundreds). The project has a ~20 MB Parquet asset ``big`` (random bytes, new every run) and a
``summary`` of it holding the checksum of the table it loaded, so a summary that read other
bytes than its record says is caught by content, not only by versions.

A kill lands either at a random instant after ``big`` starts computing (while it is encoded,
staged, published, recorded, or while ``summary`` runs), or exactly after ``big``'s file has been
published and before its record is written (``tests/crash_child.py``), the instant that used to
leave new data under the old record.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect_assets.assets.keys import AssetKey
from prefect_assets.io_managers import FsspecIOManager, InputContext
from prefect_assets.io_managers.commit import settle_interrupted
from prefect_assets.io_managers.leftovers import Leftover, sweep

REPO = Path(__file__).resolve().parents[1]
KEYS = ("big", "summary")

ASSETS = '''"""A large table and a summary that says which table it saw."""
import os
import pathlib

import pyarrow as pa

from prefect_assets import asset

from crash_checksum import checksum


@asset
def big() -> pa.Table:
    marker = os.environ.get("CRASH_MARKER")
    if marker:
        pathlib.Path(marker).touch()
    rows = int(os.environ.get("CRASH_ROWS", "320"))
    return pa.table({"blob": pa.array([os.urandom(65536) for _ in range(rows)], pa.binary())})


@asset
def summary(big: pa.Table) -> dict:
    return {"rows": big.num_rows, "checksum": checksum(big)}
'''

CHECKSUM = '''import hashlib


def checksum(table) -> str:
    digest = hashlib.sha256()
    for value in table.column("blob").to_pylist():
        digest.update(value)
    return digest.hexdigest()
'''


def checksum(table) -> str:
    """The same checksum as the project's (kept in one text above, so both agree)."""
    digest = hashlib.sha256()
    for value in table.column("blob").to_pylist():
        digest.update(value)
    return digest.hexdigest()


def make_project(folder: Path, base_uri: str, storage_options: dict | None = None) -> Path:
    """Write the crash project into ``folder``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    default = {"base_uri": base_uri}
    if storage_options:
        default["storage_options"] = storage_options
    config = {"name": "crash", "modules": ["crash_assets"], "io_managers": {"default": default}}
    (folder / "prefect_assets.yaml").write_text(json.dumps(config))  # JSON is YAML
    (folder / "crash_assets.py").write_text(ASSETS)
    (folder / "crash_checksum.py").write_text(CHECKSUM)
    return folder


@dataclass
class Tally:
    """What a series of kills did."""

    runs: int = 0
    kills: int = 0
    finished_before_the_kill: int = 0
    settled_pending: int = 0
    leftovers_right_after_kills: int = 0
    problems: list[str] = field(default_factory=list)


def cli(project: Path, *args: str, env: dict | None = None, crash_at_publish: str | None = None,
        marker: Path | None = None) -> subprocess.Popen:
    """Start ``prefect-assets ARGS`` for ``project`` in a child process."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}
    if crash_at_publish:
        full_env["CRASH_AT_PUBLISH"] = crash_at_publish
    if marker is not None:
        full_env["CRASH_MARKER"] = str(marker)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_child", *args, "--project", str(project)],
        env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def kill_once(project: Path, env: dict, at_publish: bool, rng: random.Random, window: float, tally: Tally) -> None:
    """Run ``materialize`` and kill it: at publish, or at a random instant after ``big`` starts."""
    marker = project / ".started"
    marker.unlink(missing_ok=True)
    if at_publish:
        child = cli(project, "materialize", env=env, crash_at_publish="/big.parquet")
        output = child.communicate(timeout=300)[0]
        if child.returncode != -signal.SIGKILL:
            raise AssertionError(f"expected the run to die at publish, it ended with {child.returncode}:\n{output}")
        tally.kills += 1
        return
    child = cli(project, "materialize", env=env, marker=marker)
    deadline = time.monotonic() + 300
    while not marker.exists() and child.poll() is None:
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("big never started")
        time.sleep(0.01)
    time.sleep(rng.uniform(0, window))
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
        tally.kills += 1
    else:
        tally.finished_before_the_kill += 1
    child.communicate(timeout=60)


def kill_series(project: Path, io: FsspecIOManager, env: dict, kills: int, window: float, seed: int,
                progress=None) -> Tally:
    """Materialize once (a previous version to keep), then kill runs until ``kills`` kills landed,
    alternating a random instant and the instant of publishing; check after each (:func:`check`).

    Every problem found goes to :attr:`Tally.problems` as ``run N: ...``.
    """
    first = cli(project, "materialize", env=env)
    output = first.communicate(timeout=600)[0]
    if first.returncode != 0:
        raise AssertionError(f"the first run failed:\n{output}")
    rng = random.Random(seed)
    tally = Tally()
    while tally.kills < kills:  # a random kill can come after the run finished: not counted
        tally.runs += 1
        kill_once(project, env, at_publish=tally.runs % 2 == 0, rng=rng, window=window, tally=tally)
        tally.leftovers_right_after_kills += len(leftovers(io))
        tally.problems += [f"run {tally.runs}: {problem}" for problem in check(io, tally)]
        if progress is not None and tally.runs % 20 == 0:
            progress(tally)
    return tally


def manager(base_uri: str, storage_options: dict | None = None) -> FsspecIOManager:
    return FsspecIOManager(base_uri, storage_options or {})


def check(io: FsspecIOManager, tally: Tally) -> list[str]:
    """Settle what the kill left, as the next reader does, then check every asset.

    Returns one line per problem: a pending record that cannot be settled, a value that does not
    match its record, or a summary whose record says it saw ``big``'s current version but whose
    content is the checksum of another table.
    """
    store = io.record_store
    pending = len(store.list_pending())
    unsettled = settle_interrupted(store, lambda key: io)
    tally.settled_pending += pending - len(unsettled)
    problems = [f"{key}: {why}" for (key, _), why in unsettled.items()]
    problems += [f"{key}: still pending after settling" for key, _ in store.list_pending()]
    records = {name: store.read(AssetKey.parse(name)) for name in KEYS}
    for name, record in records.items():
        if record is not None and not io.stored_matches(record):
            problems.append(f"{name}: stored data does not match its record")
    big, summary = records["big"], records["summary"]
    if big is not None and summary is not None and summary.input_versions.get("big") == big.data_version:
        table = io.load_input(InputContext(AssetKey.parse("big"), None, big))
        seen = io.load_input(InputContext(AssetKey.parse("summary"), None, summary))
        if seen["checksum"] != checksum(table):
            problems.append("summary's record says it saw big's current version, but its content is another's")
    return problems


def leftovers(io: FsspecIOManager) -> list[Leftover]:
    """Everything killed writers left that no live writer owns (nothing is removed)."""
    records = [r for r in (io.record_store.read(AssetKey.parse(name)) for name in KEYS) if r is not None]
    return sweep(io, remove=False, records=records)


def status_lines(project: Path, env: dict) -> dict[str, str]:
    """``prefect-assets status``: asset → its status word."""
    child = cli(project, "status", env=env)
    output = child.communicate(timeout=300)[0]
    if child.returncode != 0:
        raise AssertionError(f"status failed:\n{output}")
    words = {}
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[0] in KEYS and len(parts) > 1:
            words[parts[0]] = next((w for w in parts[1:] if w in ("fresh", "stale", "missing")), "?")
    return words
