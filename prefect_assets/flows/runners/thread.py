"""Threads in the run's own process: Prefect's ``ThreadPoolTaskRunner``, the default runner.

Assets share the flow process and its one API client; nothing crosses a process boundary, so
this backend needs none of the worker machinery the others use.
"""

from __future__ import annotations

import os

from prefect.task_runners import ThreadPoolTaskRunner

from prefect_assets.flows.runners.backend import RunnerBackend
from prefect_assets.runner_registry import RunnerConfig


class ThreadBackend(RunnerBackend):
    def task_runner(self, config: RunnerConfig) -> ThreadPoolTaskRunner:
        # Prefect's own default is effectively unbounded (one thread per ready task);
        # concurrent.futures' default keeps a wide graph from starting hundreds of threads.
        return ThreadPoolTaskRunner(max_workers=config.max_workers or min(32, (os.cpu_count() or 1) + 4))


BACKEND = ThreadBackend()
