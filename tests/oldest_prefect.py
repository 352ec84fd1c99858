"""The oldest Prefect we support, in a second, small virtual environment that the test session builds.

pyproject.toml declares the Prefect range we test. The main venv (the README's install) has the
newest release in it and runs the whole suite; tests/test_prefect_versions.py runs a core subset
again on the oldest, ``prefect==3.8.0`` (or ``$PREFECT_ASSETS_OLDEST_PREFECT``), in a venv of its
own. Building that venv takes ~1 min of pip, so this plugin starts it in a background thread as
soon as collection is done (and only when that test was collected), at low CPU priority, and the
test waits for it: pip's work overlaps the rest of the suite. The venv holds the package
(``pip install -e`` of this checkout) with the pinned Prefect and what the subset needs (pytest),
not the heavy dev extras (Dask, Ray, moto). It lives in a temporary folder removed at the end
of the session: every session, and so every CI run, installs it from scratch, so a dependency
that the old Prefect cannot resolve shows up at once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The oldest Prefect we support: the lower bound of ``prefect>=3.8,<3.10`` in pyproject.toml.
OLDEST_DEFAULT = "3.8.0"
#: Overrides :data:`OLDEST_DEFAULT` with another version (within the declared range), e.g. ``3.8.2``.
OLDEST_ENV = "PREFECT_ASSETS_OLDEST_PREFECT"
#: Set in the child session that runs the subset: it must not build a venv of its own.
CHILD_ENV = "PREFECT_ASSETS_IN_OLDEST_PREFECT_VENV"
#: The test module whose collection starts the build.
TEST_MODULE = "test_prefect_versions.py"
#: Installed beside the package: what the subset needs to run (the ini's ``timeout`` is pytest-timeout's).
SUBSET_REQUIREMENTS = ["pytest>=8", "pytest-timeout>=2.3"]
#: Bounds on each step of the build, in seconds (generous: a cold pip cache on a busy 2-core machine).
STEP_TIMEOUTS = {"venv": 180, "pip": 300, "install": 1200, "check": 120}
#: Lines of a failed step's output quoted in the failure.
TAIL_LINES = 60
#: What pip prints when it cannot reach the package index.
_NO_INDEX = re.compile(
    r"Could not fetch URL|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Max retries exceeded|NewConnectionError|ConnectTimeoutError|Network is unreachable|"
    r"No matching distribution found", re.IGNORECASE)


def oldest_version() -> str:
    """The Prefect version the second venv gets: ``$PREFECT_ASSETS_OLDEST_PREFECT`` or 3.8.0."""
    return os.environ.get(OLDEST_ENV, "").strip() or OLDEST_DEFAULT


def declared_range() -> str:
    """The ``prefect`` requirement in pyproject.toml, for messages (``prefect>=3.8,<3.10``)."""
    match = re.search(r'"(prefect[<>=!~][^"]*)"', (REPO / "pyproject.toml").read_text())
    return match.group(1) if match else "prefect (see pyproject.toml)"


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class OldestPrefectVenv:
    """The build of the second venv: started once, waited for by the test, removed at the end."""

    version: str
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="prefect-assets-oldest-prefect-")))
    #: Seconds each finished step took, in order (``venv``, ``pip``, ``install``, ``check``).
    durations: dict[str, float] = field(default_factory=dict)
    #: Why the build failed (a headline, the step's command and its output's tail), once it has.
    error: str | None = None
    #: Filled in by the test: one line about the subset's run, for the terminal summary.
    subset_summary: str | None = None
    _thread: threading.Thread | None = None
    _process: subprocess.Popen | None = None
    _stopping: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def log(self) -> Path:
        return self.root / "build.log"

    @property
    def build_seconds(self) -> float:
        return sum(self.durations.values())

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._build, name="oldest-prefect-venv", daemon=True)
            self._thread.start()

    def wait(self) -> Path:
        """Block until the venv is built; its python. Fails the calling test if the build failed."""
        self.start()
        self._thread.join(timeout=sum(STEP_TIMEOUTS.values()) + 60)
        if self._thread.is_alive():
            pytest.fail(f"the venv with prefect=={self.version} is still being built after "
                        f"{sum(STEP_TIMEOUTS.values()) + 60} s; its log: {self.log}")
        if self.error is not None:
            pytest.fail(self.error, pytrace=False)
        return self.python

    def stop(self) -> None:
        """Stop a build still running and remove the venv."""
        with self._lock:  # no step starts after this
            self._stopping = True
            process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        if self._thread is not None:
            self._thread.join(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ the build, in the thread

    def _build(self) -> None:
        base_python = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
        python = str(self.python)
        steps = [
            ("venv", [base_python, "-m", "venv", str(self.venv)]),
            # The venv's bundled pip can backtrack for tens of minutes on this dependency tree.
            ("pip", [python, "-m", "pip", "install", "-q", "--upgrade", "pip"]),
            ("install", [python, "-m", "pip", "install", "-q", "-e", str(REPO), f"prefect=={self.version}",
                         *SUBSET_REQUIREMENTS]),
            ("check", [python, "-c", "import prefect, prefect_assets; "
                                     "print('installed', prefect.__version__, prefect_assets.__file__)"]),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        try:
            for name, command in steps:
                output = self._run(name, command, env)
                if output is None:
                    return
            version, module_file = re.findall(r"^installed (\S+) (.+)$", output, re.MULTILINE)[-1]
            if version != self.version or not Path(module_file).resolve().is_relative_to(REPO):
                self.error = (f"the second venv has prefect {version} and prefect_assets from {module_file}; "
                              f"expected prefect {self.version} and this checkout ({REPO})")
        except Exception as exc:  # noqa: BLE001 - reported to the test, never lost in the thread
            self.error = f"building the venv with prefect=={self.version} failed: {exc!r}"

    def _run(self, name: str, command: list[str], env: dict[str, str]) -> str | None:
        """Run one step, its output appended to the log; its output, or None (``error`` set) on failure."""
        started = time.monotonic()
        with open(self.log, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            mark = log.tell()
            with self._lock:
                if self._stopping:
                    self.error = "the session ended before the venv was built"
                    return None
                self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                 cwd=self.root, stdin=subprocess.DEVNULL)
            try:  # background work: the tests running meanwhile come first
                os.setpriority(os.PRIO_PROCESS, self._process.pid, 10)
            except OSError:
                pass
            try:
                returncode = self._process.wait(timeout=STEP_TIMEOUTS[name])
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                returncode = None
        self.durations[name] = time.monotonic() - started
        with open(self.log, "rb") as log:
            log.seek(mark)
            output = log.read().decode(errors="replace")
        if returncode == 0:
            return output
        if returncode is None:
            headline = f"step '{name}' did not finish within {STEP_TIMEOUTS[name]} s"
        elif name in ("pip", "install") and _NO_INDEX.search(output):
            headline = (f"pip could not reach the package index or find what it needs (prefect=={self.version}, "
                        f"declared range {declared_range()}); the second venv needs PyPI")
        elif name == "install":
            headline = (f"pip could not install this package with prefect=={self.version} (declared range "
                        f"{declared_range()}; {OLDEST_ENV} must name a version within it)")
        else:
            headline = f"step '{name}' exited with {returncode}"
        self.error = (f"building the venv with the oldest Prefect we support failed: {headline}\n"
                      f"$ {' '.join(command)}\n{tail(output)}")
        return None


#: The session's build, once started (``None`` when the version test was not collected).
BUILD: OldestPrefectVenv | None = None


def build() -> OldestPrefectVenv:
    """The session's build, started now if collection did not start it."""
    global BUILD
    if BUILD is None:
        BUILD = OldestPrefectVenv(oldest_version())
        BUILD.start()
    return BUILD


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the build in the background if the test that needs it is among the tests to run."""
    if os.environ.get(CHILD_ENV) or session.config.option.collectonly:
        return
    if any(item.path.name == TEST_MODULE for item in session.items):
        build()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if BUILD is not None:
        BUILD.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    if BUILD is None:
        return
    steps = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in BUILD.durations.items())
    built = "failed" if BUILD.error else f"built in {BUILD.build_seconds:.0f} s ({steps})"
    line = f"oldest Prefect {BUILD.version}: second venv {built}"
    if BUILD.subset_summary:
        line += f"; {BUILD.subset_summary}"
    terminalreporter.write_line(line)
