"""Versions we promise are versions we test: the core subset on the oldest Prefect we support.

pyproject.toml declares ``prefect>=3.8,<3.10``. The whole suite runs in the main venv on the
newest release of that range; this test runs :data:`SUBSET`, the tests that touch Prefect the
most, once more in a second venv with the oldest (3.8.0, or ``$PREFECT_ASSETS_OLDEST_PREFECT``),
built in the background by tests/oldest_prefect.py while the other tests run. The subset runs in
a child pytest there, on its own Prefect test server and ``prefect server start``, on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from tests import oldest_prefect
from tests.oldest_prefect import CHILD_ENV, REPO, tail

#: The core subset (pytest arguments, relative to the repository), kept to ~1 min on a quiet 2-core
#: machine so the whole test command stays within CI's 20 minutes: the compat probes and their
#: fallbacks, flows and results on the thread runner, the process runner (whose fast path touches
#: the most internals: timeouts, events from workers, the forkserver, one client per worker), and
#: the deployable entry flow on a real ``prefect server start``.
SUBSET = [
    "tests/test_prefect_compat.py",
    "tests/test_flows.py",
    "tests/test_runners.py",
    "tests/test_deployments.py::test_entry_flow_runs_on_the_project_runner",
]
#: Deselected from tests/test_runners.py (only there: ``-k`` matches substrings of any test's name):
#: everything but the process runner, whose tests name it; Dask, Ray and S3 need the extras the
#: small venv does not have; the CLI run on processes and the two subprocess tests barely touch
#: Prefect's internals. The CLI on stock Prefect repeats, as a whole command, what the compat
#: tests' in-process fallback runs check here.
DESELECT = ("not (test_runners and (not process or dask or ray or s3 or cli_process_runner_materializes"
            " or compute_in_subprocess or assets_import_in_a_process_started_elsewhere))"
            " and not stock_prefect_cli_on_processes")


#: Bound on the child's run.
SUBSET_TIMEOUT = 600


def child_output(output: str, lines: int = 60) -> str:
    """The child's summary of what failed, after the ``lines`` lines of output before it."""
    before, marker, summary = output.rpartition("short test summary info")
    if not marker:
        return tail(output, lines)
    before = before.rpartition("\n")[0]  # the summary's own "=====" line starts after this
    return f"{tail(before, lines)}\n{'=' * 20} {marker}{summary}"


def child_env(venv) -> dict[str, str]:
    """The environment of the child pytest: ours, minus Prefect settings, with the old venv first."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("PREFECT_") and not k.startswith("PREFECT_ASSETS_"))
           and k not in ("PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST")}
    env.update({
        CHILD_ENV: "1",
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    })
    return env


@pytest.mark.timeout(sum(oldest_prefect.STEP_TIMEOUTS.values()) + SUBSET_TIMEOUT + 120)
def test_core_subset_passes_on_the_oldest_prefect(tmp_path):
    build = oldest_prefect.build()
    python = build.wait()
    command = [str(python), "-m", "pytest", *SUBSET, "-k", DESELECT, "-q", "-p", "no:cacheprovider",
               f"--basetemp={tmp_path / 'basetemp'}"]
    log = tmp_path / "subset.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        try:
            returncode = subprocess.run(command, cwd=REPO, env=child_env(build.venv), stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        timeout=SUBSET_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            returncode = None
    seconds = time.monotonic() - started
    output = log.read_text(errors="replace")
    outcome = (output.strip().splitlines() or ["no output"])[-1].strip("= ")
    build.subset_summary = f"core subset: {outcome} ({seconds:.0f} s)"
    rerun = (f"to rerun it: python3 -m venv /tmp/v && /tmp/v/bin/python -m pip install -q --upgrade pip && "
             f"/tmp/v/bin/pip install -e . prefect=={build.version} {' '.join(oldest_prefect.SUBSET_REQUIREMENTS)} && "
             f"/tmp/v/bin/python -m pytest {' '.join(SUBSET)} -k '{DESELECT}'")
    if returncode is None:
        pytest.fail(f"the core subset did not finish within {SUBSET_TIMEOUT} s on prefect {build.version}\n"
                    f"{rerun}\n{child_output(output)}", pytrace=False)
    if returncode != 0:
        pytest.fail(f"the core subset failed on prefect {build.version} (pytest exited {returncode})\n"
                    f"{rerun}\n{child_output(output)}", pytrace=False)
    passed = re.search(r"(\d+) passed", outcome)
    assert passed and int(passed.group(1)) > 0, f"the core subset ran no test:\n{tail(output, 80)}"
