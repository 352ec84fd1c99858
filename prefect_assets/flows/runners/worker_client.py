"""One Prefect API client per worker process and run, shared by all the run's assets it runs.

Prefect runs each task it sends to another process inside a fresh context, and no client
context is open there, so every task builds its own API clients: one while it rebuilds the
run's context, one more for the task engine. Each client builds an SSL context, which parses
the whole certifi CA bundle, even for an ``http://`` server, and opens its own connections to
the server. Per asset that is CPU time taken from the cores the assets need, between one
asset's end and the next one's start. (In the flow process, Prefect shares one client between
the tasks on threads.)

**Process-pool workers.** A process pool belongs to one flow run, and every task it runs gets
the run's settings. So each worker, when it is forked (:func:`start_pool_worker`), opens one
``SyncClientContext`` with those settings and keeps it open for its lifetime. Prefect's
``get_client(sync_client=True)`` returns the client of the open context, so every task in the
worker uses it, and the connection to the server is kept between tasks.

**Dask workers** serve tasks from any number of runs (a standing cluster outlives every run),
and Dask runs each task in a fresh copy of its event loop's context, so nothing a worker opens
once reaches its tasks by itself. There the submitting side wraps what each task runs in a
:class:`RunWithClientOfRun` (:mod:`prefect_assets.flows.runners.dask`), which makes the run's
client current around it: one client per worker process and run, opened by the run's first
task there, kept for the run's later tasks, closed once :data:`RUNS_REMEMBERED` newer runs have
used the worker and no task of its run is still running. What both save is measured in
``docs/runners.md``.

Tasks on several threads of one worker share the client, as tasks on the flow process's
threads share Prefect's. Not shared: a worker whose settings name no API URL (it would start a
server of its own), or one whose client cannot be opened (say, the server's API version does
not match): its tasks then build their own clients and report what goes wrong, as Prefect's
would. Ray workers build clients per task, as Prefect does.

**Events sent before a task returns**
(:func:`~prefect_assets._prefect_compat.worker_events.send_queued_events`). A task reports its
task run (running, its final state) as events, which Prefect's ``EventsWorker`` sends from a
background thread; the server knows the task run only from them. Prefect sends what is still
queued when the interpreter exits, but a worker process never exits that way: a forked process
(our forkserver's, for the process pool and a local Dask cluster) ends with ``os._exit``, and
Ray kills its workers. A local cluster's workers end with the run, right after its last asset:
their last events were lost, and the server showed a failed asset with no task run, or still
Running. Prefect's process pool waits for a worker's events after every task
(``prefect.task_runners``); :class:`RunThenSendEvents` does the same on Dask, and
:mod:`prefect_assets.flows.runners.ray` on Ray. It waits only for what is queued already, the
task's last state change and asset events, sent on an open connection.

**Prefect's internals** used here sit behind :mod:`prefect_assets._prefect_compat`: making a
client context current again (:mod:`~prefect_assets._prefect_compat.client_context`) and
waiting for the ``EventsWorker`` (:mod:`~prefect_assets._prefect_compat.worker_events`). Where
one is not available (or ``PREFECT_ASSETS_STOCK_PREFECT`` is set), Dask tasks build their own
clients, and Dask and Ray workers send their events as prefect-dask and prefect-ray do.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect.context import SettingsContext, SyncClientContext
from prefect.settings import Settings

from prefect_assets._prefect_compat import client_context as current_client
from prefect_assets._prefect_compat import worker_events
from prefect_assets.flows.runners.warm_start import match_parent_environment
from prefect_assets.flows.runners.worker_settings import RUNS_REMEMBERED


def start_pool_worker(
    environ: dict[str, str],
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    run_settings: Settings,
) -> None:
    """Process-pool worker initializer: the parent's environment, Prefect's initializer, one client.

    ``environ``, ``initializer`` and ``initargs`` go to :func:`match_parent_environment`
    (Prefect's initializer installs the forwarding of events and logs to the parent);
    ``run_settings`` are the settings of the run the pool belongs to, which its tasks run with.
    """
    match_parent_environment(environ, initializer, initargs)
    # Open for the rest of the worker's life: the open context (a context variable of the
    # worker's main thread, where every task runs) keeps it alive.
    _open_client(SettingsContext(profile=SettingsContext.get().profile, settings=run_settings))


def _open_client(settings_context: SettingsContext) -> SyncClientContext | None:
    """A client context, entered, for ``settings_context``'s API. ``None`` if the settings name
    no API URL, or the client cannot be opened: the tasks then build their own clients and
    report the error themselves."""
    if not settings_context.settings.api.url:
        return None
    with settings_context:
        client_context = SyncClientContext()
        try:
            client_context.__enter__()  # checks the server's API version, if not yet in this process
        except Exception:
            logging.getLogger(__name__).debug("no shared API client in this worker", exc_info=True)
            _close_quietly(lambda: client_context.client.__exit__(None, None, None))  # opened before the check
            return None
    return client_context


def _close_quietly(close: Callable[[], Any]) -> None:
    """Close a client; an error closing it is logged, never the failure of the task that ran."""
    try:
        close()
    except Exception:
        logging.getLogger(__name__).debug("closing a shared API client failed", exc_info=True)


def _exit_where_entered(client_context: SyncClientContext, entered_in: contextvars.Context) -> None:
    _close_quietly(lambda: entered_in.run(client_context.__exit__, None, None, None))


class RunThenSendEvents:
    """What a Dask worker runs for one task: the task, then
    :func:`~prefect_assets._prefect_compat.worker_events.send_queued_events`.

    Built on the submitting side around the function prefect-dask sends (pickled by reference:
    the worker imports this module); called on the worker with Prefect's keyword arguments,
    whose ``context`` holds the run's settings.
    """

    def __init__(self, run_task: Callable[..., Any]) -> None:
        self.run_task = run_task
        self.__name__ = getattr(run_task, "__name__", "run_task")  # Dask names the task's key by it

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        settings_context = worker_events.sent_settings_context(kwargs)
        try:
            return self.run_task(*args, **kwargs)
        finally:
            worker_events.send_queued_events(settings_context)


class RunWithClientOfRun:
    """What a Dask worker runs for one task of a run: Prefect's task function, with the run's
    client current (see the module docstring).

    Built on the submitting side around the function prefect-dask sends; ``run_token`` names
    the run (:class:`~prefect_assets.flows.runners.worker_settings.SerializedRunSettings`). Called on
    the worker with Prefect's keyword arguments, whose ``context`` holds the run's settings.
    """

    def __init__(self, run_task: Callable[..., Any], run_token: str) -> None:
        self.run_task = run_task
        self.run_token = run_token
        self.__name__ = getattr(run_task, "__name__", "run_task")  # Dask names the task's key by it

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with _client_of_run(self.run_token, worker_events.sent_settings_context(kwargs)):
            return self.run_task(*args, **kwargs)


@dataclass
class _RunClient:
    """One run's client in a worker: the entered context, the context it was entered in (to
    exit it there), and how many of the run's tasks are using it."""

    client_context: SyncClientContext
    entered_in: contextvars.Context
    users: int = 0
    retired: bool = False

    def close_if_unused(self) -> None:
        if self.retired and self.users == 0:
            _exit_where_entered(self.client_context, self.entered_in)


_clients_by_run: OrderedDict[str, _RunClient] = OrderedDict()
_clients_lock = threading.Lock()


@contextmanager
def _client_of_run(run_token: str, settings_context: dict[str, Any] | None) -> Iterator[None]:
    """Inside the block, ``get_client(sync_client=True)`` returns the run's one client in this
    process, opened on first use; without settings or an API URL, or if it cannot be opened,
    the block runs as Prefect would, building its own."""
    run_client = _take_client(run_token, settings_context) if current_client.AVAILABLE else None
    if run_client is None:
        yield
        return
    # Not ``with client_context``: entering an entered context only counts, it does not make it
    # current.
    try:
        with current_client.current(run_client.client_context):
            yield
    finally:
        with _clients_lock:
            run_client.users -= 1
            run_client.close_if_unused()


def _take_client(run_token: str, settings_context: dict[str, Any] | None) -> _RunClient | None:
    """The run's client in this process, counted as used once more; opened if it is the run's
    first task here, which retires the least recently used run's client past
    :data:`RUNS_REMEMBERED`. ``None``: the task builds its own."""
    with _clients_lock:
        run_client = _clients_by_run.get(run_token)
        if run_client is not None:
            _clients_by_run.move_to_end(run_token)
            run_client.users += 1
            return run_client
    if settings_context is None:
        return None
    # Opened in an empty context: entering sets a context variable, which must not reach the
    # task's context, and a client current there (another run's) must not be reused.
    entered_in = contextvars.Context()
    client_context = entered_in.run(_open_client, SettingsContext(**settings_context))
    if client_context is None:
        return None
    with _clients_lock:
        run_client = _clients_by_run.setdefault(run_token, _RunClient(client_context, entered_in))
        run_client.users += 1
        while len(_clients_by_run) > RUNS_REMEMBERED:
            _, retired = _clients_by_run.popitem(last=False)
            retired.retired = True
            retired.close_if_unused()
    if run_client.client_context is not client_context:  # another thread opened it meanwhile
        _exit_where_entered(client_context, entered_in)
    return run_client
