"""Crash-proof materializations, proven with SIGKILL on local disk and on S3 (moto).

After every kill, whatever instant it hits, each asset must hold its previous value with its
previous record or its new value with its new record, a reader must get exactly the bytes its
record names, and the summary must have seen the table its record says. Then ``--stale``
must complete the work and nothing a killed writer left may remain.
"""

from __future__ import annotations

import pytest

from tests.crash_harness import Tally, check, cli, kill_series, leftovers, make_project, manager, status_lines

pytestmark = pytest.mark.prefect

#: Kills per backend in CI, alternating a random instant and the instant big's file is published.
KILLS = {"local": 12, "s3": 10}


def _completes_the_work(project, io, env) -> None:
    child = cli(project, "materialize", "--stale", env=env)
    output = child.communicate(timeout=300)[0]
    assert child.returncode == 0, output
    assert status_lines(project, env) == {"big": "fresh", "summary": "fresh"}
    assert not check(io, Tally())
    assert leftovers(io) == []


def test_killed_runs_on_local_disk_leave_every_asset_consistent(tmp_path, prefect_server):
    project = make_project(tmp_path / "crash", "./data")
    io = manager(str(project / "data"))
    env = {"PREFECT_API_URL": prefect_server}
    tally = kill_series(project, io, env, KILLS["local"], window=2.0, seed=17)
    assert tally.problems == [] and tally.kills == KILLS["local"], tally
    # Every other run died between publishing big's file and writing its record: each left a
    # pending record that the next reader settled by rolling it forward.
    assert tally.settled_pending >= tally.runs // 2, tally
    _completes_the_work(project, io, env)


def test_killed_runs_on_s3_leave_every_asset_consistent(tmp_path, s3, prefect_server):
    # Parts of 5 MiB (S3's minimum), so the 20 MB table goes up as a multipart upload that a
    # kill can leave unfinished.
    options = {**s3.storage_options, "default_block_size": 5 * 2**20}
    base = f"s3://{s3.bucket}/crash"
    project = make_project(tmp_path / "crash", base, options)
    io = manager(base, options)
    env = {"PREFECT_API_URL": prefect_server}
    tally = kill_series(project, io, env, KILLS["s3"], window=4.0, seed=17)
    assert tally.problems == [] and tally.kills == KILLS["s3"], tally
    assert tally.settled_pending >= tally.runs // 2, tally
    _completes_the_work(project, io, env)
