"""prefect-dask's task runner: each Dask worker uses one Prefect API client per run, and sends
a task's Prefect events before the task returns.

prefect-dask's client sends every task to the workers as a function that runs Prefect's task
engine with the run's serialized context. On the worker, Prefect then builds two API clients
for the task (each parsing the certifi bundle), between one asset's end and the next one's
start; and the task's last events (its final state) may still be queued when it returns, lost
if the worker then ends (a local cluster's workers end with the run).
:class:`SharedClientDaskTaskRunner` wraps that function in a
:class:`~prefect_assets.flows.runners.worker_client.RunWithClientOfRun`, which gives all the run's
tasks on one worker process one client, and a
:class:`~prefect_assets.flows.runners.worker_client.RunThenSendEvents`, which waits until the task's
events are sent (:mod:`prefect_assets.flows.runners.worker_client`).

The hook is a Prefect internal, behind :mod:`prefect_assets._prefect_compat.dask_client`: the
runner passes the client prefect-dask creates (in ``DaskTaskRunner.client``) to
:func:`~prefect_assets._prefect_compat.dask_client.wrap_task_functions`, which has it wrap every
Prefect task's function with :func:`_wrap_task_function`. Where that is not available (or
``PREFECT_ASSETS_STOCK_PREFECT`` is set) the run uses prefect-dask's runner as it is. Tasks also
run exactly as prefect-dask sends them when the run's settings carry no run token (a run not
submitted through ``settings_serialized_once``), except for the events sent before they return.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from prefect_dask import DaskTaskRunner
from prefect_dask.client import PrefectDaskClient

from prefect_assets._prefect_compat import dask_client, worker_events
from prefect_assets.flows.runners.backend import RunnerBackend
from prefect_assets.flows.runners.dask_local_cluster import (
    local_cluster_kwargs,
    local_cluster_started_early,
    local_dask_cluster,
)
from prefect_assets.flows.runners.shared_api import api_shared_with_workers
from prefect_assets.flows.runners.warm_start import start_forkserver
from prefect_assets.flows.runners.worker_client import RunThenSendEvents, RunWithClientOfRun
from prefect_assets.flows.runners.worker_settings import settings_serialized_once
from prefect_assets.runner_registry import RunnerConfig


class DaskBackend(RunnerBackend):
    """A local cluster of the run (:mod:`.dask_local_cluster`), or the one at ``address``."""

    def task_runner(self, config: RunnerConfig) -> DaskTaskRunner:
        # The in-process scheduler and nannies log every connection at INFO: keep Dask no
        # chattier than Prefect (WARNING under the CLI, INFO with --verbose).
        dask_logger = logging.getLogger("distributed")
        dask_logger.setLevel(max(dask_logger.getEffectiveLevel(), logging.getLogger("prefect").getEffectiveLevel()))
        runner_class = SharedClientDaskTaskRunner if dask_client.AVAILABLE else DaskTaskRunner
        if config.address is not None:
            return runner_class(address=config.address)
        return runner_class(cluster_class=local_dask_cluster, cluster_kwargs=local_cluster_kwargs(config))

    def warm_up(self, config: RunnerConfig) -> None:
        if config.address is None:  # a local cluster's workers fork from the forkserver
            start_forkserver()

    def around_run(self, config: RunnerConfig) -> AbstractContextManager[None]:
        return _around_run(config)

    def around_submits(self, config: RunnerConfig) -> AbstractContextManager[None]:
        return settings_serialized_once()


@contextmanager
def _around_run(config: RunnerConfig) -> Iterator[None]:
    with local_cluster_started_early(config), api_shared_with_workers():
        yield


def _wrap_task_function(run_task: Any, run_task_kwargs: dict[str, Any]) -> Any:
    """What a worker runs for one Prefect task prefect-dask submits: the task with the run's
    one API client (if the run has a token), then its events sent before it returns."""
    run_token = _run_token(run_task_kwargs)
    if run_token is not None:
        run_task = RunWithClientOfRun(run_task, run_token)
    return RunThenSendEvents(run_task)


def _run_token(run_task_kwargs: dict[str, Any]) -> str | None:
    """The run token in the serialized context prefect-dask sends with a task, if any."""
    settings_context = worker_events.sent_settings_context(run_task_kwargs) or {}
    return getattr(settings_context.get("settings"), "run_token", None)


class SharedClientDaskTaskRunner(DaskTaskRunner):
    """prefect-dask's ``DaskTaskRunner``; its workers open one Prefect API client per run and
    send each task's events before it returns.

    ``duplicate()`` (Prefect duplicates the runner for every flow run) builds ``type(self)``,
    so the copy is this class too.
    """

    @property
    def client(self) -> PrefectDaskClient:
        return dask_client.wrap_task_functions(super().client, _wrap_task_function)


BACKEND = DaskBackend()
