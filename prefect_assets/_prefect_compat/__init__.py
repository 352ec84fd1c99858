"""The fence around Prefect's internals: the only package that touches them.

**The rule.** Only modules in this package may import an underscore name from ``prefect``,
``prefect_dask`` or ``prefect_ray``, import ``prefect._internal``, ``prefect.utilities`` or
``prefect.server``, read or set a private attribute of a Prefect object (``__var__`` and
``__class__`` included), override a private method of a Prefect class, pass Prefect an
underscore keyword (``_sync=``), or import an undocumented function a touchpoint here already
fences. ``tests/test_prefect_compat.py`` scans the rest of the package for each of these and
names the file and line it finds. Where a public API does the
job, the code uses it instead and nothing here is needed.

**One module per touchpoint.** Each has ``AVAILABLE``, computed when the module is imported
by a feature probe (never a version check): it looks for the very attributes, signatures and
calls the fast path relies on, in Prefect's code objects, cheaply. Its functions use the
internal when ``AVAILABLE``, else Prefect's stock behaviour: slower, never different in what a
run does or records, except where the list below says otherwise. ``probe()`` answers
regardless of the switch below; the tests pin every probe true on the Prefect releases we
support, so a release that moves an internal fails CI instead of quietly slowing runs down.
This package imports nothing from the rest of prefect-assets, and a module that needs a heavy
Prefect module (the server) is imported by its caller only when it is used.

**Touchpoints** (module: what it relies on; the fallback and what it costs):

- :mod:`.process_pool`: ``ProcessPoolTaskRunner``'s ``_started``/``_executor`` and the
  executor it builds (``_max_workers``, ``_mp_context``, ``_initializer``, ``_initargs``), to
  start the pool on its first task with workers forked from a warm forkserver. Fallback:
  Prefect's pool: spawned workers that import Prefect (about a second of CPU each, per run),
  the pool started again in every worker around each task, and no shared client per worker.
- :mod:`.settings_reload`: ``refresh_global_settings_context`` and ``setup_logging``, so a
  forked worker reads changed ``PREFECT_`` variables as a spawned one would. Fallback: the
  process runner does not fork (see above).
- :mod:`.pool_warnings`: the text of the process pool's "tags but only" warning, dropped.
  Fallback: the warning is logged for nearly every asset on a small pool.
- :mod:`.settings_context`: ``serialize_context`` calling ``SettingsContext.serialize()`` and
  hydration accepting a built ``Settings``, to serialize a run's settings once per run and
  build them once per worker. Fallback: Prefect serializes and rebuilds them for every task
  (a few hundred pydantic fields at both ends), and Dask workers share no client.
- :mod:`.client_context`: ``SyncClientContext.__var__``, to make a Dask worker's client of
  the run current around a task. Fallback: each task builds its own API clients, as in
  Prefect.
- :mod:`.worker_events`: ``EventsWorker.instance().wait_until_empty()`` and the ``context=``
  Prefect's runners send with a task, so a Dask or Ray worker sends a task's events before
  the task returns. Fallback: prefect-dask's and prefect-ray's own behaviour: events still
  queued when a worker ends (a local cluster's, at the end of the run) are lost, so the server
  may miss a task run or show it Running.
- :mod:`.plugins`: ``prefect.plugins.load_prefect_collections``, called once in the
  forkserver. Fallback: each worker loads the collections in its first task.
- :mod:`.dask_client`: ``PrefectDaskClient.submit`` handing its task function to
  ``distributed.Client.submit`` with ``task=``/``context=``, and a client's ``__class__``
  swapped, to wrap that function. Fallback: prefect-dask's runner as it is (no shared
  client, no events sent before a task returns).
- :mod:`.ray_runner`: prefect-ray's ``RayTaskRunner._run_prefect_task``, overridden to send
  the worker's events after each task. Fallback: prefect-ray's runner as it is.
- :mod:`.ephemeral_server`: ``prefect.server.api.server.SubprocessASGIServer``, the server
  ``get_client()`` starts, and its ``_run_uvicorn_command``, to start it early and guard its
  process. Fallback: Prefect starts it on first use, through the public ``get_client()``, and
  nothing stops it if the process that started it is killed with SIGKILL.

Two uses need no fence: a run's summary artifact goes through the public client
(``create_artifact``), and an asset's timeout is a scope of our own
(:mod:`prefect_assets.flows.deadline`).

**The switch.** ``PREFECT_ASSETS_STOCK_PREFECT=1`` in the environment makes every touchpoint
report itself unavailable, by choice, without probing: every fallback runs. Use it to run a
Prefect release we have not tried, or to tell whether a problem comes from a fast path.
Workers inherit it with the environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

#: The environment variable that turns every fast path off (any value but empty, 0, false, no, off).
STOCK_PREFECT_ENV = "PREFECT_ASSETS_STOCK_PREFECT"


def stock_prefect() -> bool:
    """Whether :data:`STOCK_PREFECT_ENV` asks for Prefect's stock behaviour everywhere."""
    return os.environ.get(STOCK_PREFECT_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def available(probe: Callable[[], bool]) -> bool:
    """A touchpoint's ``AVAILABLE``: False when the switch is on (``probe`` is not even run),
    else what ``probe`` finds; a probe that raises has found nothing."""
    if stock_prefect():
        return False
    try:
        return bool(probe())
    except Exception:  # a moved internal is a missing one; the fallback runs
        logging.getLogger(__name__).debug("probe %s failed", probe.__module__, exc_info=True)
        return False
