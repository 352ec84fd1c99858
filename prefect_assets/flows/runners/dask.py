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

The hook: prefect-dask's ``PrefectDaskClient.submit`` builds the function and passes it to
``distributed.Client.submit`` through ``super()``. :class:`_SharedClientDaskClient` puts
:class:`_WrapTaskFunction` between the two in its method order, so that call reaches it first.
prefect-dask creates its client inside ``DaskTaskRunner.client``, so the runner gives the client
it created this class. If prefect-dask's client is not the class this expects (another version),
tasks run exactly as prefect-dask sends them (as they do without the shared client when the
run's settings carry no run token, a run not submitted through ``settings_serialized_once``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import distributed
from prefect_dask import DaskTaskRunner
from prefect_dask.client import PrefectDaskClient

from prefect_assets.flows.runners.backend import RunnerBackend
from prefect_assets.flows.runners.dask_local_cluster import (
    local_cluster_kwargs,
    local_cluster_started_early,
    local_dask_cluster,
)
from prefect_assets.flows.runners.shared_api import api_shared_with_workers
from prefect_assets.flows.runners.warm_start import start_forkserver
from prefect_assets.flows.runners.worker_client import RunThenSendEvents, RunWithClientOfRun, sent_settings_context
from prefect_assets.flows.runners.worker_settings import settings_serialized_once
from prefect_assets.runner_registry import RunnerConfig


class DaskBackend(RunnerBackend):
    """A local cluster of the run (:mod:`.dask_local_cluster`), or the one at ``address``."""

    def task_runner(self, config: RunnerConfig) -> DaskTaskRunner:
        # The in-process scheduler and nannies log every connection at INFO: keep Dask no
        # chattier than Prefect (WARNING under the CLI, INFO with --verbose).
        dask_logger = logging.getLogger("distributed")
        dask_logger.setLevel(max(dask_logger.getEffectiveLevel(), logging.getLogger("prefect").getEffectiveLevel()))
        if config.address is not None:
            return SharedClientDaskTaskRunner(address=config.address)
        return SharedClientDaskTaskRunner(cluster_class=local_dask_cluster, cluster_kwargs=local_cluster_kwargs(config))

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


class _WrapTaskFunction(distributed.Client):
    """Wraps the function prefect-dask submits for a Prefect task (it carries the run's
    ``context``) so the worker runs it with the run's one API client and sends its events
    before returning. Any other submit passes through untouched."""

    def submit(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if "task" in kwargs:
            run_token = _run_token(kwargs)
            if run_token is not None:
                func = RunWithClientOfRun(func, run_token)
            func = RunThenSendEvents(func)
        return super().submit(func, *args, **kwargs)


def _run_token(run_task_kwargs: dict[str, Any]) -> str | None:
    """The run token in the serialized context prefect-dask sends with a task, if any."""
    settings_context = sent_settings_context(run_task_kwargs) or {}
    return getattr(settings_context.get("settings"), "run_token", None)


class _SharedClientDaskClient(PrefectDaskClient, _WrapTaskFunction):
    """``PrefectDaskClient``, whose ``super().submit`` reaches :class:`_WrapTaskFunction`."""


class SharedClientDaskTaskRunner(DaskTaskRunner):
    """prefect-dask's ``DaskTaskRunner``; its workers open one Prefect API client per run and
    send each task's events before it returns.

    ``duplicate()`` (Prefect duplicates the runner for every flow run) builds ``type(self)``,
    so the copy is this class too.
    """

    @property
    def client(self) -> PrefectDaskClient:
        client = super().client
        if type(client) is PrefectDaskClient:
            client.__class__ = _SharedClientDaskClient  # adds only the wrapping of submit
        return client


BACKEND = DaskBackend()
