"""The progress bar ``materialize`` shows while a flow run works through the assets."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prefect_assets.assets.keys import AssetKey


class RunProgress:
    """A rich progress bar fed by the scheduler's events (``on_event``)."""

    def __init__(self, console: Console, total: int):
        self._progress = Progress(
            TextColumn("[bold]materializing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.description}"), console=console, transient=True,
        )
        self._task = self._progress.add_task("", total=total)
        self._running: set[AssetKey] = set()

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def on_event(self, kind: str, key: AssetKey, result: Any) -> None:
        if kind == "running":
            self._running.add(key)
        else:
            self._running.discard(key)
            self._progress.advance(self._task)
        shown = ", ".join(sorted(str(k) for k in self._running)[:3])
        more = len(self._running) - 3
        self._progress.update(self._task, description=shown + (f" +{more}" if more > 0 else ""))
