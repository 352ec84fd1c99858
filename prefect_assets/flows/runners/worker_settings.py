"""How a flow run's Prefect settings reach the worker processes that run its assets.

Prefect sends every task it runs in another process (a process-pool, Dask or Ray worker) the
run's context, settings included. The submitting side serializes the current
``SettingsContext`` to a dict; the worker rebuilds :class:`prefect.settings.Settings` from that
dict before the task starts. Both ends run pydantic-settings over a few hundred fields, and
Prefect does both once per task, on the cores the assets need.

Settings do not change while a flow run submits its tasks, so :func:`settings_serialized_once`
makes both ends happen once per run instead:

- **Submitting side**: the dict is made on first use and reused for every task of the run
  (Prefect's own process pool caches its context the same way; prefect-dask and prefect-ray
  do not).
- **Worker side**: the dict travels as a :class:`SerializedRunSettings`, which unpickles to the
  ``Settings`` built from it, built once per worker process and run (:func:`settings_for_run`)
  and shared by the run's later tasks there. Prefect's hydration accepts a ``Settings``
  where it would build one from a dict.

The worker builds the settings exactly as Prefect would (``Settings(**dict)``, its own
environment filling what the dict leaves unset), only not again for each task. Here, in the
submitting process, the serialized settings are still an ordinary ``dict``.

Both ends rely on how Prefect serializes and hydrates its context, behind
:mod:`prefect_assets._prefect_compat.settings_context`; where that is not available (or
``PREFECT_ASSETS_STOCK_PREFECT`` is set) Prefect does both for every task, as by default.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.settings import Settings

from prefect_assets._prefect_compat import settings_context

#: Runs whose settings a long-lived worker (a standing Dask cluster's) keeps built.
RUNS_REMEMBERED = 8

_built_for_run: OrderedDict[str, Settings] = OrderedDict()
_built_lock = threading.Lock()


def settings_for_run(run_token: str, serialized: dict[str, Any]) -> Settings:
    """The ``Settings`` Prefect builds from ``serialized``, built once per process and run.

    Called by unpickling a :class:`SerializedRunSettings` in a worker process. ``run_token``
    names the flow run's serialization: tasks of one run get the same object, another run
    builds its own (its settings may differ).
    """
    with _built_lock:
        built = _built_for_run.get(run_token)
        if built is not None:
            _built_for_run.move_to_end(run_token)
            return built
    built = Settings(**serialized)  # what pydantic does with the dict inside SettingsContext(...)
    with _built_lock:
        _built_for_run[run_token] = built
        while len(_built_for_run) > RUNS_REMEMBERED:
            _built_for_run.popitem(last=False)
    return built


class SerializedRunSettings(dict):
    """A run's serialized settings: a plain ``dict`` in this process, a built ``Settings`` in a
    worker (see :func:`settings_for_run`)."""

    def __init__(self, run_token: str, serialized: dict[str, Any]) -> None:
        super().__init__(serialized)
        self.run_token = run_token

    def __reduce__(self) -> tuple[Any, ...]:
        return (settings_for_run, (self.run_token, dict(self)))


@contextmanager
def settings_serialized_once() -> Iterator[None]:
    """Inside the block, Prefect's settings are serialized once and rebuilt once per worker,
    not once per submitted task (see the module docstring).

    Wrap it around the code that submits one flow run's tasks. Tasks on threads never
    serialize anything, so it costs them nothing.
    """
    run_token = uuid.uuid4().hex
    with settings_context.serialized_once(lambda serialized: SerializedRunSettings(run_token, serialized)):
        yield
