"""Runner backends: the Prefect task runner a run uses, and what its workers need around it.

:mod:`prefect_assets.runner_registry` names the runners and their options; :mod:`.backend`
says what a runner module provides and picks the one a run uses:
:mod:`.thread`, :mod:`.process`, :mod:`.dask` (with :mod:`.dask_local_cluster`) and :mod:`.ray`.
The other modules are the worker machinery the process-based runners share: workers forked
from a warm forkserver (:mod:`.warm_start`, :mod:`.forkserver_preload`), the run's settings
built once per worker (:mod:`.worker_settings`), one API client per worker and run and events
sent before a task returns (:mod:`.worker_client`), and one API for all workers
(:mod:`.shared_api`).

Nothing outside this package knows which runner is in use: assets receive their inputs from
storage and write their outputs to storage, so every runner runs every asset the same way.
"""
