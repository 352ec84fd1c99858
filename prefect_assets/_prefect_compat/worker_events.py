"""A worker's queued Prefect events sent before its task returns, and the run's settings a task
carries.

A task reports its task run (running, its final state) as events, which Prefect's
``EventsWorker`` sends from a background thread; the server knows the task run only from them.
Prefect's own process pool waits for a worker's events after every task
(``prefect.task_runners``); :func:`send_queued_events` does the same for the runners that do not
(Dask, Ray), through ``EventsWorker.instance().wait_until_empty()``.

The run's settings come from the keyword arguments Prefect's runners send a worker with each
task: ``context=``, the serialized run context, whose ``settings_context`` they are
(:func:`sent_settings_context`).

Without :data:`AVAILABLE` :func:`send_queued_events` does nothing: the runner behaves as its
Prefect collection does, and events still queued when a worker process ends are lost.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.context import SettingsContext
from prefect.events.worker import EventsWorker

from prefect_assets._prefect_compat import available


def probe() -> bool:
    """``EventsWorker`` has the class method ``instance`` and the method ``wait_until_empty``."""
    return callable(getattr(EventsWorker, "instance", None)) and callable(getattr(EventsWorker, "wait_until_empty", None))


AVAILABLE = available(probe)


def sent_settings_context(run_task_kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The run's serialized ``SettingsContext`` among the keyword arguments a task runner sends
    to run one task (Prefect's ``context=``), if there is one."""
    context = run_task_kwargs.get("context")
    settings_context = context.get("settings_context") if isinstance(context, dict) else None
    return settings_context if isinstance(settings_context, dict) else None


def send_queued_events(settings_context: dict[str, Any] | None) -> None:
    """Block until this worker's queued Prefect events of the run have been sent (best effort).

    Called after a task, before its result goes back to the submitting side. Under the run's
    settings, as the task ran: ``EventsWorker.instance()`` picks its instance by the settings'
    API, and outside them it would make a new one (with no API URL in the worker's environment,
    one that starts an ephemeral server) instead of finding the task's. No settings (not a
    Prefect task), or not :data:`AVAILABLE`: nothing to wait for.
    """
    if settings_context is None or not AVAILABLE:
        return
    try:
        with SettingsContext(**settings_context):
            EventsWorker.instance().wait_until_empty()
    except Exception:  # the task's own outcome stands; a lost event is only logged
        logging.getLogger(__name__).debug("could not send the worker's queued events", exc_info=True)
