"""The process pool's "Task X has N tags but only M workers available" warning, dropped.

Prefect warns about its tag-based concurrency limits, which can deadlock a small pool. Our
tags are labels (``group:raw``, ``team:bi``), every asset has at least one, and our
concurrency limits are global ones taken inside the task: the warning would fire for nearly
every asset on a two-worker pool and mean nothing. Prefect gives it no category or option, so
the filter matches its text. Without :data:`AVAILABLE` (the text has changed, or the switch
is on) no filter is added and the warning is logged, as by Prefect.
"""

from __future__ import annotations

import logging

from prefect.task_runners import ProcessPoolTaskRunner

from prefect_assets._prefect_compat import available

#: A piece of the warning's text, as ``ProcessPoolTaskRunner.submit`` builds it.
TEXT = "tags but only"


def probe() -> bool:
    """``ProcessPoolTaskRunner.submit`` still builds a message with :data:`TEXT` in it."""
    return any(isinstance(c, str) and TEXT in c for c in ProcessPoolTaskRunner.submit.__code__.co_consts)


AVAILABLE = available(probe)


class _DropTagWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return TEXT not in record.getMessage()


def quiet_tag_warning(logger: logging.Logger | logging.LoggerAdapter) -> None:
    """Drop the tag warning from ``logger`` (a process pool's ``logger``), once."""
    if not AVAILABLE:
        return
    target = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
    if not any(isinstance(f, _DropTagWarning) for f in target.filters):
        target.addFilter(_DropTagWarning())
