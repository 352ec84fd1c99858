"""prefect-dask's task runner, with each Dask worker using one Prefect API client per run.

prefect-dask's client sends every task to the workers as a function that runs Prefect's task
engine with the run's serialized context; on the worker, Prefect then builds two API clients
for the task (each parsing the certifi bundle), between one asset's end and the next one's
start. :class:`SharedClientDaskTaskRunner` wraps that function in a
:class:`~prefect_assets.flows.worker_client.RunWithClientOfRun`, which gives all the run's tasks
on one worker process one client (:mod:`prefect_assets.flows.worker_client`).

The hook: prefect-dask's ``PrefectDaskClient.submit`` builds the function and passes it to
``distributed.Client.submit`` through ``super()``. :class:`_SharedClientDaskClient` puts
:class:`_WrapTaskFunction` between the two in its method order, so that call reaches it first.
prefect-dask creates its client inside ``DaskTaskRunner.client``, so the runner gives the client
it created this class. If prefect-dask's client is not the class this expects (another version),
or the run's settings carry no run token (a run not submitted through
``settings_serialized_once``), tasks run exactly as prefect-dask sends them: slower, never wrong.
"""

from __future__ import annotations

from typing import Any

import distributed
from prefect_dask import DaskTaskRunner
from prefect_dask.client import PrefectDaskClient

from prefect_assets.flows.worker_client import RunWithClientOfRun, sent_settings_context


class _WrapTaskFunction(distributed.Client):
    """Wraps the function prefect-dask submits for a Prefect task (it carries the run's
    ``context``) so the worker runs it with the run's one API client."""

    def submit(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        run_token = _run_token(kwargs) if "task" in kwargs else None
        if run_token is not None:
            func = RunWithClientOfRun(func, run_token)
        return super().submit(func, *args, **kwargs)


def _run_token(run_task_kwargs: dict[str, Any]) -> str | None:
    """The run token in the serialized context prefect-dask sends with a task, if any."""
    settings_context = sent_settings_context(run_task_kwargs) or {}
    return getattr(settings_context.get("settings"), "run_token", None)


class _SharedClientDaskClient(PrefectDaskClient, _WrapTaskFunction):
    """``PrefectDaskClient``, whose ``super().submit`` reaches :class:`_WrapTaskFunction`."""


class SharedClientDaskTaskRunner(DaskTaskRunner):
    """prefect-dask's ``DaskTaskRunner``; its workers open one Prefect API client per run.

    ``duplicate()`` (Prefect duplicates the runner for every flow run) builds ``type(self)``,
    so the copy is this class too.
    """

    @property
    def client(self) -> PrefectDaskClient:
        client = super().client
        if type(client) is PrefectDaskClient:
            client.__class__ = _SharedClientDaskClient  # adds only the wrapping of submit
        return client
