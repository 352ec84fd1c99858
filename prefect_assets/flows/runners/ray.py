"""prefect-ray's task runner, with each Ray worker's Prefect events sent before its task returns.

A Prefect task on a Ray worker reports its task run (created, running, its final state) as
events, which Prefect's ``EventsWorker`` sends to the server from a background thread. Ray
keeps a worker process between tasks and kills it at ``ray.shutdown()`` when the run ends, so
events still queued then never reached the server: an asset that failed showed no task run at
all, a timed-out one stayed Running. Prefect's own process pool flushes the worker's
``EventsWorker`` after every task for the same reason (``prefect.task_runners``); this runner
does the same on Ray, as :mod:`prefect_assets.flows.runners.dask` does on Dask
(:func:`~prefect_assets.flows.runners.worker_client.send_queued_events`).

The hook: prefect-ray sends ``RayTaskRunner._run_prefect_task`` to the workers as the remote
function. :class:`FlushingRayTaskRunner` overrides it to run prefect-ray's own, then wait until
the worker's queued events are sent. If prefect-ray no longer has that function,
:func:`ray_task_runner_class` returns prefect-ray's runner unchanged.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

from prefect_ray import RayTaskRunner

from prefect_assets.flows.runners.backend import RunnerBackend
from prefect_assets.flows.runners.shared_api import api_shared_with_workers
from prefect_assets.flows.runners.worker_client import send_queued_events, sent_settings_context
from prefect_assets.flows.runners.worker_settings import settings_serialized_once
from prefect_assets.runner_registry import RunnerConfig


class RayBackend(RunnerBackend):
    """Local Ray started for the run, or the cluster at ``address``."""

    def task_runner(self, config: RunnerConfig) -> RayTaskRunner:
        runner_class = ray_task_runner_class()
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


def ray_task_runner_class() -> type[RayTaskRunner]:
    """:class:`FlushingRayTaskRunner` where prefect-ray has the hook it needs, else prefect-ray's own."""
    if callable(getattr(RayTaskRunner, "_run_prefect_task", None)):
        return FlushingRayTaskRunner
    return RayTaskRunner


class FlushingRayTaskRunner(RayTaskRunner):
    """prefect-ray's runner; each task waits on its worker until its Prefect events are sent.

    ``duplicate()`` (Prefect duplicates the runner per flow run) builds ``type(self)``, so the
    copy is this class too; Ray sends the remote function to the workers by reference.
    """

    @staticmethod
    def _run_prefect_task(*upstream_ray_obj_refs: Any, **kwargs: Any) -> Any:
        settings_context = sent_settings_context(kwargs)
        try:
            return RayTaskRunner._run_prefect_task(*upstream_ray_obj_refs, **kwargs)
        finally:
            send_queued_events(settings_context)


BACKEND = RayBackend()
