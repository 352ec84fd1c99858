"""Processes: Prefect's ``ProcessPoolTaskRunner``, its workers forked from a warm forkserver.

Everything is Prefect's (event and log forwarding from the workers, futures, cancellation)
except when the pool starts (its first task, not every time Prefect enters it) and how its
workers start: forked from the forkserver that has already imported Prefect
(:mod:`.warm_start`), each opening one API client with the run's settings for all its tasks
(:mod:`.worker_client`). Both go through Prefect's internals, behind
:mod:`prefect_assets._prefect_compat.process_pool`; where that is not available (or
``PREFECT_ASSETS_STOCK_PREFECT`` is set) the run uses Prefect's pool as it is. A task's
Prefect events leave its worker before its result does: Prefect's process pool waits for them
after each task itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from prefect.settings import get_current_settings
from prefect.task_runners import ProcessPoolTaskRunner

from prefect_assets._prefect_compat import pool_warnings, process_pool, settings_reload
from prefect_assets.flows.runners.backend import RunnerBackend
from prefect_assets.flows.runners.shared_api import api_shared_with_workers
from prefect_assets.flows.runners.warm_start import start_forkserver, worker_context
from prefect_assets.flows.runners.worker_client import start_pool_worker
from prefect_assets.flows.runners.worker_settings import settings_serialized_once
from prefect_assets.runner_registry import RunnerConfig


def forked_workers_available() -> bool:
    """Whether the pool's workers can fork from the forkserver: Prefect's pool can be started
    our way, and a forked worker can read Prefect's settings again (both fenced internals)."""
    return process_pool.AVAILABLE and settings_reload.AVAILABLE


class ProcessBackend(RunnerBackend):
    def task_runner(self, config: RunnerConfig) -> ProcessPoolTaskRunner:
        runner_class = ForkserverProcessPoolTaskRunner if forked_workers_available() else ProcessPoolTaskRunner
        runner = runner_class(max_workers=config.max_workers)
        pool_warnings.quiet_tag_warning(runner.logger)
        return runner

    def warm_up(self, config: RunnerConfig) -> None:
        if forked_workers_available():
            start_forkserver()

    def around_run(self, config: RunnerConfig) -> AbstractContextManager[None]:
        return api_shared_with_workers()

    def around_submits(self, config: RunnerConfig) -> AbstractContextManager[None]:
        return settings_serialized_once()


class ForkserverProcessPoolTaskRunner(process_pool.LazyProcessPoolTaskRunner):
    """Prefect's process pool, started by its first task, with workers forked from the warm
    forkserver instead of spawned (see :mod:`prefect_assets._prefect_compat.process_pool`).

    Each worker starts with :func:`~prefect_assets.flows.runners.worker_client.start_pool_worker`:
    the parent's current environment, Prefect's own initializer (which installs the forwarding
    of events and logs), and one API client, made with the run's settings, for all its tasks.
    Where there is no forkserver (Windows) the workers are Prefect's spawned ones.

    Example:
        >>> with ForkserverProcessPoolTaskRunner(max_workers=2) as runner:   # doctest: +SKIP
        ...     runner.submit(my_task, {"x": 1}).result()
    """

    def worker_start(self, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> process_pool.WorkerStart:
        return process_pool.WorkerStart(
            worker_context(),
            start_pool_worker,
            (dict(os.environ), initializer, initargs, get_current_settings()),
        )


BACKEND = ProcessBackend()
