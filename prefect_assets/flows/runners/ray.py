"""prefect-ray's task runner, with each Ray worker's Prefect events sent before its task returns.

A Prefect task on a Ray worker reports its task run (created, running, its final state) as
events, which Prefect's ``EventsWorker`` sends to the server from a background thread. Ray
keeps a worker process between tasks and kills it at ``ray.shutdown()`` when the run ends, so
events still queued then never reached the server: an asset that failed showed no task run at
all, a timed-out one stayed Running. Prefect's own process pool flushes the worker's
``EventsWorker`` after every task for the same reason (``prefect.task_runners``); this runner
does the same on Ray, as :mod:`prefect_assets.flows.runners.dask` does on Dask.

The hook overrides a private method of prefect-ray's runner, so it lives behind the fence:
:mod:`prefect_assets._prefect_compat.ray_runner` gives the runner class, prefect-ray's own
where the hook is not available (or ``PREFECT_ASSETS_STOCK_PREFECT`` is set).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager

from prefect_ray import RayTaskRunner

from prefect_assets._prefect_compat.ray_runner import task_runner_class
from prefect_assets.flows.runners.backend import RunnerBackend
from prefect_assets.flows.runners.shared_api import api_shared_with_workers
from prefect_assets.flows.runners.worker_settings import settings_serialized_once
from prefect_assets.runner_registry import RunnerConfig


class RayBackend(RunnerBackend):
    """Local Ray started for the run, or the cluster at ``address``."""

    def task_runner(self, config: RunnerConfig) -> RayTaskRunner:
        runner_class = task_runner_class()
        if config.address is not None:
            return runner_class(address=config.address)
        # No dashboard (another server and port per run), and Ray no chattier than Prefect.
        init_kwargs: dict = {"include_dashboard": False, "logging_level": logging.getLogger("prefect").getEffectiveLevel()}
        if config.max_workers is not None:
            init_kwargs["num_cpus"] = config.max_workers
        return runner_class(init_kwargs=init_kwargs)

    def around_run(self, config: RunnerConfig) -> AbstractContextManager[None]:
        return api_shared_with_workers()

    def around_submits(self, config: RunnerConfig) -> AbstractContextManager[None]:
        return settings_serialized_once()


BACKEND = RayBackend()
