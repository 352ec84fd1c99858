"""The local Dask cluster a run on ``runner: {type: dask}`` (no ``address``) starts and stops.

prefect-dask calls :func:`local_dask_cluster` as its ``cluster_class`` when the run submits
its first asset. It is a ``distributed.LocalCluster`` with three differences, all about the
cores and seconds the assets need, since the cluster lives for one run on the same machine:

- **Workers fork from the warm forkserver** (:mod:`prefect_assets.flows.runners.warm_start`) instead
  of being spawned and importing Prefect every run.
- **Dask's background sampling is slower** (:data:`QUIET_CLUSTER`). Every Dask server (the
  scheduler, each nanny and worker) wakes up on timers: the statistical profiler every 10 ms,
  the event-loop health check every 20 ms, the system monitor (the dashboard's CPU, memory and
  network charts) every 500 ms. In a worker each wake-up takes the GIL from the running asset.

What that costs a user: the dashboard of a run's cluster has no statistical profile, and its
system charts update every 2 s. A key you set yourself in Dask's config files, in a ``DASK_*``
environment variable, or in code to another value than Dask's default, is kept:
``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=True`` brings the profiler back. A cluster given
by ``address`` is never touched: it is configured where it runs.

- **It can start before the flow run does** (:func:`local_cluster_started_early`, used by
  ``materialize()``): prefect-dask would start it only at the first submit, after the flow run
  is created; started at the beginning of the run, in a background thread, its start-up
  (scheduler, nannies, workers registering) overlaps the flow run's own, and its workers have
  settled when the first asset arrives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from prefect_assets.flows.runners.warm_start import forkserver_available, start_forkserver
from prefect_assets.runner_registry import RunnerConfig

#: Dask settings for a run's local cluster, each applied unless the user configured that key.
QUIET_CLUSTER: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,  # default: sample every thread's stack every 10 ms
    "distributed.admin.tick.interval": "1s",  # default 20ms; a blocked event loop is still reported after 3 s
    "distributed.admin.system-monitor.interval": "2s",  # default 500ms
}


def local_cluster_kwargs(config: RunnerConfig) -> dict[str, Any]:
    """What a run on ``config`` (``type: dask``, no ``address``) passes :func:`local_dask_cluster`."""
    return {
        # One thread per worker process: assets are usually CPU-bound Python, which threads
        # inside one process would serialize on the GIL.
        "n_workers": config.max_workers or os.cpu_count() or 1,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        # A free port, not 8787: two runs (or a run beside a cluster) must not clash. The
        # dashboard link is in the flow run's log.
        "dashboard_address": ":0",
    }


@dataclass
class _EarlyCluster:
    """A cluster started ahead of its run, waiting for the run's first submit to claim it."""

    cluster_kwargs: dict[str, Any]
    started: Future
    claimed: bool = False


_started_early: ContextVar[_EarlyCluster | None] = ContextVar("prefect_assets_local_dask_early", default=None)


@contextmanager
def local_cluster_started_early(config: RunnerConfig) -> Iterator[None]:
    """Start the run's local Dask cluster now, in the background, for the run inside the block.

    The first :func:`local_dask_cluster` call inside the block with the same arguments (the
    run's first submit, through prefect-dask) gets this cluster, waiting for it if it is still
    starting; prefect-dask then closes it with the run, as any cluster it creates. A cluster
    nothing claimed (the run failed before its first asset, or had none to run) is closed when
    the block ends. For a cluster given by ``address`` the block does nothing.
    """
    if config.address is not None:
        yield
        return
    early = _EarlyCluster(local_cluster_kwargs(config), _start_in_background(local_cluster_kwargs(config)))
    token = _started_early.set(early)
    try:
        yield
    finally:
        _started_early.reset(token)
        if not early.claimed:
            _close_once_started(early.started)


def _start_in_background(cluster_kwargs: dict[str, Any]) -> Future:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-dask-cluster")
    try:
        return pool.submit(_start_cluster, **cluster_kwargs)
    finally:
        pool.shutdown(wait=False)  # the thread ends when the cluster has started


def _close_once_started(started: Future) -> None:
    if started.exception() is None:  # one that failed to start has nothing to close
        started.result().close()


def local_dask_cluster(**cluster_kwargs: Any) -> Any:
    """The run's local cluster: the one :func:`local_cluster_started_early` started, if it is
    this run's and unclaimed, else a new one (see :func:`_start_cluster`)."""
    early = _started_early.get()
    if early is not None and not early.claimed and early.cluster_kwargs == cluster_kwargs:
        early.claimed = True
        return early.started.result()  # raises what starting it raised, as a new one would
    return _start_cluster(**cluster_kwargs)


def _start_cluster(**cluster_kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` for one run: workers forked from the forkserver, quiet timers.

    Dask's nannies start workers with the method in the dask config key
    ``distributed.worker.multiprocessing-method`` (default ``spawn``). It is set to
    ``forkserver``, and :data:`QUIET_CLUSTER` applied, only while this cluster starts (the
    nannies hand the config of that moment to their workers), so nothing else in the process
    changes. A worker its nanny restarts later is spawned, as Dask does by default. The workers
    get the parent's current environment through the nannies' ``env`` (the forkserver's own is
    from when it started), with ``cluster_kwargs["env"]`` on top.
    """
    import dask
    from distributed import LocalCluster

    config = unless_configured(QUIET_CLUSTER)
    if not forkserver_available():
        with dask.config.set(config):
            return LocalCluster(**cluster_kwargs)
    start_forkserver()  # before Dask's nannies, so it runs with our preloads, not Dask's
    env = {**os.environ, **cluster_kwargs.pop("env", {})}
    with dask.config.set({**config, "distributed.worker.multiprocessing-method": "forkserver"}):
        return LocalCluster(**cluster_kwargs, env=env)


def unless_configured(settings: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``settings`` whose Dask config key the user has not set.

    Set means: present in Dask's config files or ``DASK_*`` variables (what
    ``dask.config.collect()`` reads, without Dask's defaults), or changed in code to a value
    other than the one Dask ships.
    """
    import dask

    users = dask.config.collect()
    shipped = dask.config.merge(*dask.config.defaults)
    missing = object()
    return {
        key: value
        for key, value in settings.items()
        if dask.config.get(key, missing, config=users) is missing
        and dask.config.get(key, missing) == dask.config.get(key, missing, config=shipped)
    }
