"""Worker processes forked from a warm forkserver instead of spawned cold.

A process-pool worker or a local Dask worker started with ``spawn`` is a new interpreter that
imports Prefect before it runs its first asset: CPU time per worker, in every run, on the
cores the assets need. On Linux and macOS, :mod:`multiprocessing`'s *forkserver* start
method pays that once: one helper process, the forkserver, imports Prefect, prefect-assets
(and ``distributed`` when installed) and does the rest of a worker's first-task set-up
(:mod:`prefect_assets.flows.runners.forkserver_preload`), and every worker is a fork of it, ready at
once.

- **One forkserver per parent process** (multiprocessing keeps it as a singleton). The first
  run that needs workers starts it, or the runner's ``warm_up`` does, in the background, as
  soon as a run knows its runner; it lives until the parent exits, so later runs in the same process
  (a notebook, a script that materializes in a loop) fork at once. A CLI command, and each
  flow run that ``serve`` or a Prefect worker starts, is a process of its own: it starts its
  forkserver as the run begins, while the run does its own set-up.
- **Workers are still new processes per run**, and the forkserver never imports the project: each
  worker imports the project's modules itself, so an edited asset runs its new code in the
  next run. Only Prefect and prefect-assets are imported once per parent process.
- **What a worker takes from the parent, as under spawn**: ``sys.path``, the working
  directory and ``__main__`` (multiprocessing sends them at every start), and the environment,
  which the forkserver froze when it started: :func:`match_parent_environment` (process pool) and
  :func:`~prefect_assets.flows.runners.dask_local_cluster.local_dask_cluster` (Dask nannies' ``env``) hand over the parent's current one.
- **Windows** has no forkserver: workers are spawned, as Prefect does everywhere.

This module imports neither Prefect nor Dask at import time, so a command can start the
forkserver before it imports them itself.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import multiprocessing.forkserver
import os
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any


def forkserver_available() -> bool:
    """Whether this platform has the forkserver start method (Linux, macOS; not Windows)."""
    return "forkserver" in multiprocessing.get_all_start_methods()


def preload_modules() -> list[str]:
    """What the forkserver imports before it forks anything: the modules every worker needs.

    ``distributed`` when the dask extra is installed, then
    :mod:`prefect_assets.flows.runners.forkserver_preload`, which imports Prefect's task engine (the
    bulk of Prefect), our task module and this one (the process pool's worker initializer),
    does the rest of what a worker did in its first task, and freezes the heap it leaves.
    Never the project's modules, which each worker imports fresh.

    ``distributed`` goes first, as in a spawned Dask worker: it gives its loggers a handler
    of their own only if the root logger has none yet, and Prefect's import adds one. The
    other way round Dask's workers log through Prefect's console handler, which Dask's
    ``silence_logs`` does not reach, and every worker's start-up chatter shows.
    """
    modules = ["prefect_assets.flows.runners.forkserver_preload"]
    if importlib.util.find_spec("distributed") is not None:
        modules.insert(0, "distributed")
    return modules


def worker_context() -> BaseContext:
    """The multiprocessing context worker processes start from: the forkserver, else spawn.

    Also (re)sets the forkserver's preload list. Dask sets its own list (``distributed`` and
    a few packages, no Prefect) whenever its nannies use the forkserver; it takes effect only
    if the forkserver is not running yet, so :func:`~prefect_assets.flows.runners.dask_local_cluster.local_dask_cluster`
    starts it first.
    """
    if not forkserver_available():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload_modules())
    return context


def start_forkserver() -> None:
    """Start the forkserver (with its preloads) if it is not running; returns at once.

    The forkserver imports its preloads in the background; a worker started meanwhile waits
    for it. Cheap when it is already up (one ``waitpid``).
    """
    if forkserver_available():
        worker_context()
        multiprocessing.forkserver.ensure_running()


def match_parent_environment(
    environ: dict[str, str], initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> None:
    """Process-pool worker initializer: take the parent's environment, then run ``initializer``.

    A spawned worker inherits the parent's environment as it is when the pool starts; a forked
    one has the forkserver's, frozen when it started (possibly during an earlier run). Prefect
    read its settings and configured logging from that environment at import, in the forkserver,
    so when a ``PREFECT_`` variable differs they are read again, as a spawned worker would.
    """
    prefect_before = _prefect_variables(os.environ)
    if environ != os.environ:
        os.environ.clear()
        os.environ.update(environ)
    if _prefect_variables(os.environ) != prefect_before:
        from prefect_assets._prefect_compat import settings_reload

        settings_reload.reload_from_environment()  # the process pool forks only where this is available
    if initializer is not None:
        initializer(*initargs)


def _prefect_variables(environ: Any) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith("PREFECT_")}
