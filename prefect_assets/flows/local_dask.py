"""The local Dask cluster a run on ``runner: {type: dask}`` (no ``address``) starts and stops.

prefect-dask calls :func:`local_dask_cluster` as its ``cluster_class`` when the run submits
its first asset. It is a ``distributed.LocalCluster`` with two differences, both about the
cores the assets need, since the cluster lives for one run on the same machine:

- **Workers fork from the warm forkserver** (:mod:`prefect_assets.flows.warm_start`) instead
  of being spawned and importing Prefect every run.
- **Dask's background sampling is slower** (:data:`QUIET_CLUSTER`). Every Dask server (the
  scheduler, each nanny and worker) wakes up on timers: the statistical profiler every 10 ms,
  the event-loop health check every 20 ms, the system monitor (the dashboard's CPU, memory and
  network charts) every 500 ms. In a worker each wake-up takes the GIL from the running asset.
  Measured on two cores with eight CPU-bound tasks on a bare two-worker ``LocalCluster``
  (16 interleaved rounds, ``benchmarks/``-style): tasks ran 6.8% faster with all three slowed
  down (faster in 16 rounds of 16), 2.9% with only the first two.

What that costs a user: the dashboard of a run's cluster has no statistical profile, and its
system charts update every 2 s. A key you set yourself in Dask's config files, in a ``DASK_*``
environment variable, or in code to another value than Dask's default, is kept:
``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=True`` brings the profiler back. A cluster given
by ``address`` is never touched: it is configured where it runs.
"""

from __future__ import annotations

import os
from typing import Any

from prefect_assets.flows.warm_start import forkserver_available, start_forkserver

#: Dask settings for a run's local cluster, each applied unless the user configured that key.
QUIET_CLUSTER: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,  # default: sample every thread's stack every 10 ms
    "distributed.admin.tick.interval": "1s",  # default 20ms; a blocked event loop is still reported after 3 s
    "distributed.admin.system-monitor.interval": "2s",  # default 500ms
}


def local_dask_cluster(**cluster_kwargs: Any) -> Any:
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
