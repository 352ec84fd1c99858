"""Prefect task runners from the project's ``runner:`` config.

One function, :func:`make_task_runner`, turns a :class:`~prefect_assets.config.RunnerConfig`
into the Prefect task runner that executes the assets:

============  ====================================  ===========================================
``type``      Prefect task runner                   ``max_workers`` / ``address``
============  ====================================  ===========================================
``thread``    ``ThreadPoolTaskRunner`` (default)    threads (default ``min(32, cores + 4)``)
``process``   ``ProcessPoolTaskRunner``             processes (default: one per core)
``dask``      ``prefect_dask.DaskTaskRunner``       local cluster of n single-threaded worker
                                                    processes, or ``address: tcp://host:8786``
``ray``       ``prefect_ray.RayTaskRunner``         local Ray with n CPUs, or ``address``
============  ====================================  ===========================================

Nothing else in the package knows which runner is in use: assets receive their inputs from
storage and write their outputs to storage, so every runner runs every asset the same way.
Dask and Ray are optional extras; asking for one that is not installed is an
:class:`~prefect_assets.errors.AssetsError` naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import importlib
import os

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from prefect_assets.config import RunnerConfig
from prefect_assets.errors import AssetsError

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
        return ProcessPoolTaskRunner(max_workers=config.max_workers)
    if config.type == "dask":
        return _dask_runner(config)
    if config.type == "ray":
        return _ray_runner(config)
    raise AssetsError(f"unknown runner type '{config.type}'; use thread, process, dask or ray")


def _dask_runner(config: RunnerConfig) -> TaskRunner:
    module = _import_extra("dask")
    if config.address is not None:
        return module.DaskTaskRunner(address=config.address)
    return module.DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            # One thread per worker process: assets are usually CPU-bound Python, which
            # threads inside one process would serialize on the GIL.
            "n_workers": config.max_workers or os.cpu_count() or 1,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
        },
    )


def _ray_runner(config: RunnerConfig) -> TaskRunner:
    module = _import_extra("ray")
    if config.address is not None:
        return module.RayTaskRunner(address=config.address)
    init_kwargs = {"include_dashboard": False}
    if config.max_workers is not None:
        init_kwargs["num_cpus"] = config.max_workers
    return module.RayTaskRunner(init_kwargs=init_kwargs)


def _import_extra(runner_type: str):
    module_name, extra = _EXTRAS[runner_type]
    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise AssetsError(
            f"runner '{runner_type}' needs the {extra} extra: pip install 'prefect-assets[{extra}]'"
        ) from None
