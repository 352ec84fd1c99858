"""Prefect's ``ProcessPoolTaskRunner``, started by its first task, its workers started our way.

:class:`LazyProcessPoolTaskRunner` is Prefect's process pool with two changes, both reached
through Prefect's private attributes:

- **Started by the first submit (or map), not on entering.** Prefect enters a copy of the
  flow's task runner around every task it runs in a worker, in case the task submits tasks of
  its own; Prefect's ``__enter__`` starts a message queue, a forwarding thread and two
  executors, and ``__exit__`` tears them down, for each task, in the worker, where assets never
  submit. This runner starts on its first ``submit`` and stops on exit only if it started
  (``_started``).
- **Workers started as :meth:`~LazyProcessPoolTaskRunner.worker_start` says.** Prefect's start
  creates its ``ProcessPoolExecutor`` (``_executor``) with a hard-coded ``spawn`` context, and
  no option changes it. The executor starts no process until the first task reaches it, so this
  lets Prefect build it, then replaces it with one that differs only in its context and
  initializer: the same size (``_max_workers``), and Prefect's own initializer and arguments
  (``_initializer``, ``_initargs``: they install the forwarding of events and logs) handed to
  the subclass's initializer. Reproducing Prefect's start instead would copy its queue and
  forwarding thread set-up.

Everything else is Prefect's: event and log forwarding, the user ``initializer``, futures,
cancellation. ``duplicate()`` (Prefect duplicates the runner for every flow run) builds
``type(self)``, so the copy is the subclass too.

Without :data:`AVAILABLE` the caller uses Prefect's ``ProcessPoolTaskRunner`` itself. If at
start the executor is not what this expects (another Python), the run keeps Prefect's spawned
workers: slower, never wrong.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any, NamedTuple

from prefect.task_runners import ProcessPoolTaskRunner
from typing_extensions import Self

from prefect_assets._prefect_compat import available

#: What the replacement executor copies from the one Prefect built.
_COPIED = ("_max_workers", "_mp_context", "_initializer", "_initargs")


def probe() -> bool:
    """Prefect's pool keeps ``_started`` and ``_executor``, builds a ``ProcessPoolExecutor`` in
    ``__enter__``, duplicates as ``type(self)``, and its ``submit``/``map`` take the arguments
    the overrides pass on; the executor keeps what the replacement copies."""

    class Duplicated(ProcessPoolTaskRunner):
        pass

    runner = ProcessPoolTaskRunner(max_workers=1)
    return (
        getattr(runner, "_started", None) is False
        and hasattr(runner, "_executor")
        and "ProcessPoolExecutor" in ProcessPoolTaskRunner.__enter__.__code__.co_names
        and type(Duplicated(max_workers=1).duplicate()) is Duplicated
        and _parameters(ProcessPoolTaskRunner.submit) == ["task", "parameters", "wait_for", "dependencies"]
        and _parameters(ProcessPoolTaskRunner.map) == ["task", "parameters", "wait_for"]
        and set(_COPIED) <= set(ProcessPoolExecutor.__init__.__code__.co_names)
    )


def _parameters(method: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(method).parameters)[1:]


AVAILABLE = available(probe)


class WorkerStart(NamedTuple):
    """How a pool's workers start: the multiprocessing context, and the initializer with its
    arguments (which must call Prefect's initializer with Prefect's arguments)."""

    context: BaseContext
    initializer: Callable[..., None]
    initargs: tuple[Any, ...]


class LazyProcessPoolTaskRunner(ProcessPoolTaskRunner):
    """Prefect's process pool, started by its first task, with workers started as
    :meth:`worker_start` says (see the module docstring). Use it only if :data:`AVAILABLE`.

    Example:
        >>> class Forked(LazyProcessPoolTaskRunner):   # doctest: +SKIP
        ...     def worker_start(self, initializer, initargs):
        ...         return WorkerStart(multiprocessing.get_context("forkserver"), initializer, initargs)
    """

    _start_lock = threading.Lock()

    def worker_start(self, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> WorkerStart | None:
        """How this pool's workers start, given Prefect's worker ``initializer`` and ``initargs``;
        ``None`` keeps Prefect's spawned workers. Called once, when the pool starts."""
        return None

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
        start = self.worker_start(spawning._initializer, spawning._initargs)
        if start is None or start.context.get_start_method() == spawning._mp_context.get_start_method():
            return  # Prefect's pool is already right
        self._executor = ProcessPoolExecutor(
            max_workers=spawning._max_workers,
            mp_context=start.context,
            initializer=start.initializer,
            initargs=start.initargs,
        )
        spawning.shutdown()


def _unstarted_pool(executor: Any) -> bool:
    """A ``ProcessPoolExecutor`` with no worker started and the attributes we copy from it."""
    return (
        isinstance(executor, ProcessPoolExecutor)
        and all(hasattr(executor, a) for a in _COPIED)
        and not getattr(executor, "_processes", None)
    )
