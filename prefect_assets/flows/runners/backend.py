"""What a runner backend provides, and the backend of a run.

Each runner named in :data:`~prefect_assets.runner_registry.RUNNERS` is a module of this
package with a ``BACKEND``: a :class:`RunnerBackend`. Its module is imported only when a run
uses it, after the runner's extra is found.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from prefect_assets.errors import AssetsError
from prefect_assets.runner_registry import RUNNERS, RunnerConfig

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner


class RunnerBackend:
    """What a runner module provides, as ``BACKEND``. Only :meth:`task_runner` is required;
    the other hooks default to doing nothing, as the thread runner needs."""

    def task_runner(self, config: RunnerConfig) -> TaskRunner:
        """A fresh, unstarted Prefect task runner; the flow run starts and stops it."""
        raise NotImplementedError

    def warm_up(self, config: RunnerConfig) -> None:
        """Start, in the background, what the run's workers will need (called as early as the
        runner is known, so it overlaps the run's own start)."""

    def around_run(self, config: RunnerConfig) -> AbstractContextManager[None]:
        """Entered around the flow call: what the run's workers share while it lasts."""
        return _nothing()

    def around_submits(self, config: RunnerConfig) -> AbstractContextManager[None]:
        """Entered in the flow body around the submission of the run's tasks."""
        return _nothing()


def backend(config: RunnerConfig) -> RunnerBackend:
    """The backend of ``config.type``, its module imported now.

    Raises:
        AssetsError: the runner's extra is not installed (naming the ``pip install`` that fixes it).
    """
    spec = RUNNERS[config.type]
    if spec.extra is not None:
        extra, package = spec.extra
        try:
            importlib.import_module(package)
        except ImportError:
            raise AssetsError(
                f"runner '{spec.name}' needs the {extra} extra: pip install 'prefect-assets[{extra}]'"
            ) from None
    return importlib.import_module(spec.module).BACKEND


def make_task_runner(config: RunnerConfig) -> TaskRunner:
    """The Prefect task runner ``config`` describes (see :data:`RUNNERS`).

    Example:
        >>> make_task_runner(RunnerConfig(type="thread", max_workers=4))  # doctest: +ELLIPSIS
        <prefect.task_runners.ThreadPoolTaskRunner object at ...>
    """
    return backend(config).task_runner(config)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
