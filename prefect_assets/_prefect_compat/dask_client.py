"""prefect-dask's client, made to pass each Prefect task's function through a wrapper.

prefect-dask's ``PrefectDaskClient.submit`` builds, for a Prefect task, the function a Dask
worker runs (Prefect's task engine) and passes it to ``distributed.Client.submit`` through
``super()``, with the task's keyword arguments (``task=``, ``context=``: the run's serialized
context). :func:`wrap_task_functions` gives one client a class that puts a ``submit`` between
the two in its method order, so that call reaches it first and the function can be wrapped
there. prefect-dask creates its client inside ``DaskTaskRunner.client``, so the caller's
runner hands the client it gets there to this function.

Without :data:`AVAILABLE` the client is left as it is: tasks run exactly as prefect-dask sends
them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

import distributed
from prefect_dask import DaskTaskRunner
from prefect_dask.client import PrefectDaskClient

from prefect_assets._prefect_compat import available

#: Given the function prefect-dask submits for a Prefect task and the keyword arguments it
#: submits it with, the function the worker runs instead.
TaskFunctionWrapper = Callable[[Callable[..., Any], dict[str, Any]], Callable[..., Any]]


def probe() -> bool:
    """``PrefectDaskClient.submit`` serializes the context and calls ``super().submit`` with
    ``task``/``context`` keywords; ``DaskTaskRunner.client`` is a property."""
    code = PrefectDaskClient.submit.__code__
    return (
        {"serialize_context", "super", "submit"} <= set(code.co_names)
        and {"task", "context"} <= {c for c in code.co_consts if isinstance(c, str)}
        and isinstance(inspect.getattr_static(DaskTaskRunner, "client"), property)
    )


AVAILABLE = available(probe)


def wrap_task_functions(client: PrefectDaskClient, wrap: TaskFunctionWrapper) -> PrefectDaskClient:
    """``client``, which from now on submits ``wrap(function, kwargs)`` for each Prefect task
    (any other submit passes through untouched). ``wrap`` must be a module-level function.
    A client of another class than prefect-dask's own, or not :data:`AVAILABLE`: untouched."""
    if AVAILABLE and type(client) is PrefectDaskClient:
        client.__class__ = _wrapping_class(wrap)  # adds only the wrapping of submit
    return client


@cache
def _wrapping_class(wrap: TaskFunctionWrapper) -> type[PrefectDaskClient]:
    class WrapTaskFunction(distributed.Client):
        def submit(self, func: Any, *args: Any, **kwargs: Any) -> Any:
            if "task" in kwargs:
                func = wrap(func, kwargs)
            return super().submit(func, *args, **kwargs)

    return type("PrefectDaskClientWrappingTasks", (PrefectDaskClient, WrapTaskFunction), {})
