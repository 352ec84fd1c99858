"""Prefect task runners from the project's ``runner:`` config.

One function, :func:`make_task_runner`, turns a :class:`~prefect_assets.config.RunnerConfig`
into the Prefect task runner that executes the assets:

============  ====================================  ===========================================
``type``      Prefect task runner                   ``max_workers`` / ``address``
============  ====================================  ===========================================
``thread``    ``ThreadPoolTaskRunner`` (default)    threads (default ``min(32, cores + 4)``)
``process``   ``ProcessPoolTaskRunner`` (forked     processes (default: one per core)
              from a warm forkserver)
``dask``      ``prefect_dask.DaskTaskRunner`` (its  local cluster of n single-threaded worker
              workers share one API client per      processes, or ``address: tcp://host:8786``
              run, and send a task's events before
              it returns: :mod:`.dask_runner`)
``ray``       ``prefect_ray.RayTaskRunner`` (its    local Ray with n CPUs, or ``address``
              workers send their events before a
              task returns: :mod:`.ray_runner`)
============  ====================================  ===========================================

Worker processes (the process pool, a local Dask cluster) fork from a forkserver that has
already imported Prefect, instead of each importing it in every run: see
:mod:`prefect_assets.flows.warm_start`.

On every runner a task's Prefect events (its task run's states, which the server records only
from them) leave its worker before the task's result does, so a worker may end with the run:
Prefect's process pool waits for them after each task itself, Dask and Ray workers do it in
:mod:`.dask_runner` and :mod:`.ray_runner`, and on threads they are the flow process's own.

Nothing else in the package knows which runner is in use: assets receive their inputs from
storage and write their outputs to storage, so every runner runs every asset the same way.
Dask and Ray are optional extras; asking for one that is not installed is an
:class:`~prefect_assets.errors.AssetsError` naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from prefect.settings import get_current_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from pydantic import ValidationError
from typing_extensions import Self

from prefect_assets.config import RunnerConfig
from prefect_assets.errors import AssetsError
from prefect_assets.flows.local_dask import local_cluster_kwargs, local_dask_cluster
from prefect_assets.flows.warm_start import worker_context
from prefect_assets.flows.worker_client import start_pool_worker

#: The package each optional runner needs, and the extra that installs it.
_EXTRAS = {"dask": ("prefect_dask", "dask"), "ray": ("prefect_ray", "ray")}


def make_task_runner(config: RunnerConfig) -> TaskRunner:
    """The Prefect task runner ``config`` describes.

    Args:
        config: the project's ``runner:`` section (possibly overridden on the command line).

    Returns:
        A fresh, unstarted Prefect task runner; the flow run starts and stops it.

    Raises:
        AssetsError: the runner's extra is not installed, or the options do not fit the runner
            (``address`` for threads or processes, ``max_workers`` for an existing cluster).

    Example:
        >>> make_task_runner(RunnerConfig(type="thread", max_workers=4))  # doctest: +ELLIPSIS
        <prefect.task_runners.ThreadPoolTaskRunner object at ...>
    """
    if config.address is not None and config.type not in ("dask", "ray"):
        raise AssetsError(
            f"runner.address is for dask and ray clusters, not the {config.type} runner; "
            f"remove address: or set runner.type: dask"
        )
    if config.address is not None and config.max_workers is not None:
        # An existing cluster's size is set where its workers start; silently ignoring the
        # option would promise a bound that does not hold.
        raise AssetsError(
            f"runner.max_workers cannot resize the existing {config.type} cluster at {config.address}; "
            "size it where its workers start (e.g. dask worker --nworkers N) and drop max_workers / --max-workers"
        )
    if config.type == "thread":
        # Prefect's own default is effectively unbounded (one thread per ready task);
        # concurrent.futures' default keeps a wide graph from starting hundreds of threads.
        return ThreadPoolTaskRunner(max_workers=config.max_workers or min(32, (os.cpu_count() or 1) + 4))
    if config.type == "process":
        runner = ForkserverProcessPoolTaskRunner(max_workers=config.max_workers)
        _quiet_tag_warning(runner.logger)
        return runner
    if config.type == "dask":
        return _dask_runner(config)
    if config.type == "ray":
        return _ray_runner(config)
    raise AssetsError(f"unknown runner type '{config.type}'; use thread, process, dask or ray")


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
    :func:`~prefect_assets.flows.worker_client.start_pool_worker`, which also gives each worker
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


@contextmanager
def api_shared_with_workers(config: RunnerConfig) -> Iterator[None]:
    """Inside the block, worker processes use the same Prefect API as this process.

    Without ``PREFECT_API_URL`` Prefect starts an ephemeral server in the first process that
    needs an API, and under the process pool, Dask or Ray that is *every* worker process:
    each would start its own server (each competing with the assets for CPU). Start
    the ephemeral server once, here, and put its URL in the settings Prefect hands to its
    workers. With ``PREFECT_API_URL`` set, or under threads, this does nothing.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        temporary_settings,
    )

    if config.type == "thread" or PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # one per process: the one get_client() would start
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def _dask_runner(config: RunnerConfig) -> TaskRunner:
    _import_extra("dask")
    from prefect_assets.flows.dask_runner import SharedClientDaskTaskRunner
    # The in-process scheduler and nannies log every connection at INFO: keep Dask no
    # chattier than Prefect (WARNING under the CLI, INFO with --verbose).
    dask_logger = logging.getLogger("distributed")
    dask_logger.setLevel(max(dask_logger.getEffectiveLevel(), logging.getLogger("prefect").getEffectiveLevel()))
    if config.address is not None:
        return SharedClientDaskTaskRunner(address=config.address)
    return SharedClientDaskTaskRunner(
        # distributed.LocalCluster, its workers forked from the warm forkserver, Dask's
        # background sampling slowed down (flows/local_dask.py).
        cluster_class=local_dask_cluster,
        cluster_kwargs=local_cluster_kwargs(config),
    )


def _ray_runner(config: RunnerConfig) -> TaskRunner:
    _import_extra("ray")
    from prefect_assets.flows.ray_runner import ray_task_runner_class

    runner_class = ray_task_runner_class()
    if config.address is not None:
        return runner_class(address=config.address)
    # No dashboard (another server and port per run), and Ray no chattier than Prefect.
    init_kwargs: dict = {"include_dashboard": False, "logging_level": logging.getLogger("prefect").getEffectiveLevel()}
    if config.max_workers is not None:
        init_kwargs["num_cpus"] = config.max_workers
    return runner_class(init_kwargs=init_kwargs)


def _import_extra(runner_type: str):
    module_name, extra = _EXTRAS[runner_type]
    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise AssetsError(
            f"runner '{runner_type}' needs the {extra} extra: pip install 'prefect-assets[{extra}]'"
        ) from None


def override_runner(configured: RunnerConfig, runner: str | None, max_workers: int | None) -> RunnerConfig:
    """The configured runner with a run's overrides (``--runner``, ``--max-workers``) applied.

    Raises:
        AssetsError: an unknown runner type or a worker count below 1.
    """
    updates: dict[str, Any] = {}
    if runner is not None and runner != configured.type:
        # Another runner type on the command line: the configured cluster address is not its.
        updates.update(type=runner, address=None)
    if max_workers is not None:
        updates["max_workers"] = max_workers
    if not updates:
        return configured
    try:
        return RunnerConfig.model_validate({**configured.model_dump(), **updates})
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AssetsError(f"runner override: {detail}") from None
