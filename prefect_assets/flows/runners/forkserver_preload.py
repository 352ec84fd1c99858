"""Imported by the forkserver, once, before it forks any worker: the worker's first-task work, done ahead.

Every process-pool or local Dask worker is a fork of the forkserver (see
:mod:`prefect_assets.flows.runners.warm_start`), so whatever this module does, each worker inherits done.
Importing it anywhere else would only cost time: nothing imports it but the forkserver.

What a worker would otherwise do in its first task:

- **Import Prefect's task engine and the process pool's per-task wrapper** (``prefect.engine``,
  which the wrapper imports inside each call) and our task module.
- **Load Prefect's collections** (``prefect-dask``, ``prefect-ray``, ...). The run context a
  task receives holds a result-storage block; validating it looks its class up by key, which
  imports every installed collection the first time
  (:mod:`prefect_assets._prefect_compat.plugins`).
- **Freeze the garbage collector's view of all that** (:func:`gc.freeze`). A worker starts with
  Prefect's whole import-time heap; its first full collection, inside its first task, walked
  every object of it and, by touching them, copied the shared memory pages. Frozen objects are
  never scanned: the worker collects only what it allocates itself.
  This is what the :mod:`gc` documentation recommends before forking without exec.
"""

from __future__ import annotations

import gc

import prefect.engine  # noqa: F401 - imported by the process pool's wrapper around every task
import prefect.task_engine  # noqa: F401 - runs every task

import prefect_assets.flows.runners.worker_client  # noqa: F401 - the process pool's worker initializer
import prefect_assets.flows.runners.worker_settings  # noqa: F401 - rebuilds the run's settings in the worker
import prefect_assets.flows.tasks  # noqa: F401 - the asset task and everything it loads and stores with
from prefect_assets._prefect_compat.plugins import load_collections

load_collections()
gc.collect()
gc.freeze()
