"""The progress bar ``materialize`` shows while a flow run works through the assets."""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prefect_assets.assets.keys import AssetKey


#: Loggers whose warnings are notes for the user of ``materialize`` (printed above the bar).
NOTE_LOGGERS = ("prefect_assets.flows.killed_runs", "prefect_assets.flows.embedded_server")


class RunProgress:
    """A rich progress bar fed by the scheduler's events (``on_event``); warnings of
    :data:`NOTE_LOGGERS` print above it as notes."""

    def __init__(self, console: Console, total: int):
        self._progress = Progress(
            TextColumn("[bold]materializing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.description}"), console=console, transient=True,
        )
        self._task = self._progress.add_task("", total=total)
        self._running: set[AssetKey] = set()
        self._notes = _NoteHandler(console)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        for name in NOTE_LOGGERS:
            # Not also through Prefect's console handler on the root logger (--verbose): once.
            logger = logging.getLogger(name)
            logger.addHandler(self._notes)
            logger.propagate = False
        return self

    def __exit__(self, *exc: Any) -> None:
        for name in NOTE_LOGGERS:
            logger = logging.getLogger(name)
            logger.removeHandler(self._notes)
            logger.propagate = True
        self._progress.stop()

    def on_recording(self, recorded: int, expected: int) -> None:
        """After the run, while Prefect's embedded server records its task runs."""
        self._progress.update(
            self._task, description=f"waiting for Prefect to record the task runs: {recorded}/{expected}"
        )

    def on_event(self, kind: str, key: AssetKey, result: Any) -> None:
        if kind == "running":
            self._running.add(key)
        else:
            self._running.discard(key)
            self._progress.advance(self._task)
        shown = ", ".join(sorted(str(k) for k in self._running)[:3])
        more = len(self._running) - 3
        self._progress.update(self._task, description=shown + (f" +{more}" if more > 0 else ""))


class _NoteHandler(logging.Handler):
    """Prints warnings on the progress bar's console, which keeps the bar below them."""

    def __init__(self, console: Console) -> None:
        super().__init__(level=logging.WARNING)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        self._console.print(f"[yellow]note:[/yellow] {escape(record.getMessage())}", highlight=False, soft_wrap=True)
