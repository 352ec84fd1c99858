"""Prefect task runners from the project's ``runner:`` config."""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from prefect_assets.config import RunnerConfig
from prefect_assets.errors import AssetsError


def make_task_runner(config: RunnerConfig) -> TaskRunner:
    """The Prefect task runner ``config`` describes.

    The thread pool is bounded by ``max_workers`` (default: Prefect's own default), because
    Prefect's default pool is otherwise effectively unbounded.
    """
    if config.type == "thread":
        return ThreadPoolTaskRunner(max_workers=config.max_workers) if config.max_workers else ThreadPoolTaskRunner()
    raise AssetsError(f"runner type '{config.type}' is not available yet; use runner: {{type: thread}}")
