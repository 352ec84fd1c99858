"""prefect-ray's task runner, with each Ray worker's Prefect events sent before its task returns.

Ray keeps a worker process between tasks and kills it at ``ray.shutdown()`` when the run ends,
so events still queued then never reached the server: an asset that failed showed no task run
at all, a timed-out one stayed Running. prefect-ray sends ``RayTaskRunner._run_prefect_task``
(a static method) to the workers as the remote function; :class:`FlushingRayTaskRunner`
overrides it to run prefect-ray's own, then wait until the worker's queued events are sent
(:func:`~prefect_assets._prefect_compat.worker_events.send_queued_events`). Ray sends the
function by reference, so a worker imports this module to run it.

Without :data:`AVAILABLE` (or without :mod:`.worker_events`) :func:`task_runner_class` is
prefect-ray's runner itself.
"""

from __future__ import annotations

import inspect
from typing import Any

from prefect_ray import RayTaskRunner

from prefect_assets._prefect_compat import available, worker_events


def probe() -> bool:
    """``RayTaskRunner.submit`` sends ``self._run_prefect_task``, a static method."""
    return isinstance(inspect.getattr_static(RayTaskRunner, "_run_prefect_task", None), staticmethod) and (
        "_run_prefect_task" in RayTaskRunner.submit.__code__.co_names
    )


AVAILABLE = available(probe)


class FlushingRayTaskRunner(RayTaskRunner):
    """prefect-ray's runner; each task waits on its worker until its Prefect events are sent.

    ``duplicate()`` (Prefect duplicates the runner per flow run) builds ``type(self)``, so the
    copy is this class too.
    """

    @staticmethod
    def _run_prefect_task(*upstream_ray_obj_refs: Any, **kwargs: Any) -> Any:
        settings_context = worker_events.sent_settings_context(kwargs)
        try:
            return RayTaskRunner._run_prefect_task(*upstream_ray_obj_refs, **kwargs)
        finally:
            worker_events.send_queued_events(settings_context)


def task_runner_class() -> type[RayTaskRunner]:
    """:class:`FlushingRayTaskRunner` where prefect-ray has the hook it needs, else prefect-ray's own."""
    return FlushingRayTaskRunner if AVAILABLE and worker_events.AVAILABLE else RayTaskRunner
