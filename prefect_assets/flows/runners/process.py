"""Processes: Prefect's ``ProcessPoolTaskRunner``, its workers forked from a warm forkserver.

Everything is Prefect's (event and log forwarding from the workers, futures, cancellation)
except how the workers start: forked from the forkserver that has already imported Prefect
(:mod:`.warm_start`), each opening one API client with the run's settings for all its tasks
(:mod:`.worker_client`). A task's Prefect events leave its worker before its result does:
Prefect's process pool waits for them after each task itself.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

from prefect.settings import get_current_settings
from prefect.task_runners import ProcessPoolTaskRunner
from typing_extensions import Self

from prefect_assets.flows.runners.backend import RunnerBackend
from prefect_assets.flows.runners.shared_api import api_shared_with_workers
from prefect_assets.flows.runners.warm_start import start_forkserver, worker_context
from prefect_assets.flows.runners.worker_client import start_pool_worker
from prefect_assets.flows.runners.worker_settings import settings_serialized_once
from prefect_assets.runner_registry import RunnerConfig


class ProcessBackend(RunnerBackend):
    def task_runner(self, config: RunnerConfig) -> ProcessPoolTaskRunner:
        runner = ForkserverProcessPoolTaskRunner(max_workers=config.max_workers)
        _quiet_tag_warning(runner.logger)
        return runner

    def warm_up(self, config: RunnerConfig) -> None:
        start_forkserver()

    def around_run(self, config: RunnerConfig) -> AbstractContextManager[None]:
        return api_shared_with_workers()

    def around_submits(self, config: RunnerConfig) -> AbstractContextManager[None]:
        return settings_serialized_once()


class ForkserverProcessPoolTaskRunner(ProcessPoolTaskRunner):
    """Prefect's process pool, with workers forked from the warm forkserver instead of spawned,
    started by its first task.

    Everything else is Prefect's: event and log forwarding from the workers, the user
    ``initializer``, futures, cancellation. ``duplicate()`` (Prefect duplicates the runner for
    every flow run) builds ``type(self)``, so the copy is this class too.

    **Started by the first submit (or map), not on entering.** Prefect enters a copy of the flow's
    task runner around every task it runs in a worker, in case the task submits tasks of its
    own; Prefect's ``__enter__`` starts a message queue, a forwarding thread and two executors,
    and ``__exit__`` tears them down, for each asset, in the worker, where assets never submit.
    This runner starts on its first ``submit`` and stops on exit only if it started.

    **Forked workers.** Prefect's start creates its ``ProcessPoolExecutor`` with a hard-coded
    ``multiprocessing.get_context("spawn")``, and no option changes it. The executor starts no
    process until the first task reaches it, so this lets Prefect build it, then replaces it
    with one that differs only in its context and initializer: the same size, and Prefect's own
    initializer (which installs the forwarding) run by
    :func:`~prefect_assets.flows.runners.worker_client.start_pool_worker`, which also gives each worker
    one API client, made with the run's settings, for all its tasks. Reproducing Prefect's start
    instead would copy its queue and forwarding thread set-up. If the executor is not what this
    expects (another Prefect or Python version), the run keeps Prefect's spawned workers:
    slower, never wrong.

    Example:
        >>> with ForkserverProcessPoolTaskRunner(max_workers=2) as runner:   # doctest: +SKIP
        ...     runner.submit(my_task, {"x": 1}).result()
    """

    _start_lock = threading.Lock()

    def __enter__(self) -> Self:
        return self  # started by the first submit

    def __exit__(self, *exc_info: object) -> None:
        if self._started:
            super().__exit__(*exc_info)

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Any = None, dependencies: Any = None) -> Any:
        self._start_once()
        return super().submit(task, parameters, wait_for=wait_for, dependencies=dependencies)

    def map(self, task: Any, parameters: dict[str, Any], wait_for: Any = None) -> Any:
        self._start_once()
        return super().map(task, parameters, wait_for=wait_for)

    def _start_once(self) -> None:
        with self._start_lock:
            if not self._started:
                self._start()

    def _start(self) -> None:
        super().__enter__()
        spawning = self._executor
        if not _unstarted_pool(spawning):
            return
        context = worker_context()
        if context.get_start_method() == spawning._mp_context.get_start_method():
            return  # no forkserver here (Windows): Prefect's pool is already right
        self._executor = ProcessPoolExecutor(
            max_workers=spawning._max_workers,
            mp_context=context,
            initializer=start_pool_worker,
            initargs=(dict(os.environ), spawning._initializer, spawning._initargs, get_current_settings()),
        )
        spawning.shutdown()


def _unstarted_pool(executor: Any) -> bool:
    """A ``ProcessPoolExecutor`` with no worker started and the attributes we copy from it."""
    return (
        isinstance(executor, ProcessPoolExecutor)
        and all(hasattr(executor, a) for a in ("_max_workers", "_mp_context", "_initializer", "_initargs"))
        and not getattr(executor, "_processes", None)
    )


class _DropTagWarning(logging.Filter):
    """Drops the process pool's "Task X has N tags but only M workers available" warning.

    It warns about Prefect's tag-based concurrency limits, which can deadlock a small pool;
    our tags are labels (``group:raw``, ``team:bi``), every asset has at least one, and our
    concurrency limits are global ones taken inside the task. The warning would fire for
    nearly every asset on a two-worker pool and mean nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "tags but only" not in record.getMessage()


def _quiet_tag_warning(logger: logging.Logger) -> None:
    if not any(isinstance(f, _DropTagWarning) for f in logger.filters):
        logger.addFilter(_DropTagWarning())


BACKEND = ProcessBackend()
