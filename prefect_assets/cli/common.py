"""What every command shares: the Typer app, consoles, common options and error handling."""

from __future__ import annotations

import functools
import gc
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Optional, Union

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from prefect_assets.config import LocalServerConfig
from prefect_assets.deployments.local_server import LocalServer, use_local_server
from prefect_assets.errors import AssetsError

app = typer.Typer(
    help="Software-defined assets on Prefect: list, graph, materialize, deploy and inspect a project's assets.",
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help and errors: rich's boxes spend five lines on a one-line mistake.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", is_eager=True, help="Print the version and exit."),
) -> None:
    """Bare ``prefect-assets`` prints this help; ``--version`` the installed version."""
    if version:
        try:
            installed = importlib.metadata.version("prefect-assets")
        except importlib.metadata.PackageNotFoundError:  # imported from a source tree, not installed
            installed = "(not installed: pip install -e .)"
        out.print(f"prefect-assets {installed}", highlight=False, markup=False)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help(), highlight=False, markup=False)
        raise typer.Exit(0)

# Piped output (CI logs, tests) gets wide lines instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

ProjectOption = typer.Option(
    None, "--project", "-p", metavar="DIR", help="Project folder (default: walk up from here)."
)
SelectOption = typer.Option(
    None, "--select", "-s", metavar="SELECTION", help="Selection, e.g. '+daily', 'group:raw', 'tag:team=bi'."
)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print an AssetsError as one line on stderr and exit 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AssetsError as exc:
            # escape: the message quotes user input, which rich would otherwise read as markup
            err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def prepare_prefect_environment(verbose: bool = False) -> None:
    """Settings that must be in place before Prefect is imported.

    Without ``PREFECT_API_URL`` Prefect starts an ephemeral server, which can be slow to start
    on a cold 2-core machine: give it time instead of failing, and keep that embedded server
    from phoning home. Prefect's logs stay out of the progress display unless asked for.
    """
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        # The terminal gets our summary; Prefect's log lines (a failed asset's traceback
        # among them) still go to the server's flow and task run logs, and --verbose shows
        # them here too. Set in the environment so that worker processes inherit it.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


@contextmanager
def prefect_server(options: LocalServerConfig | None) -> Iterator[LocalServer | None]:
    """Use the running local Prefect server for the block when ``PREFECT_API_URL`` is unset
    (started first if the project asks for it on demand); None: Prefect's own choice stands."""
    options = options or LocalServerConfig()
    with use_local_server(options.start_on_demand, options.port) as server:
        yield server


def note_embedded_server() -> None:
    """Say on stderr, when the command used Prefect's embedded server, how to get the faster path."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        err.print(
            "note: Prefect's embedded server started with this command and stopped with it; for runs "
            "that start at once and keep their history in the Prefect UI: prefect-assets server start",
            style="dim", highlight=False, soft_wrap=True,
        )


#: Tables up to this many rows are drawn by rich (colour, cells wrapped to the terminal);
#: longer ones print as plain aligned text, the same columns: rich's layout costs time per row
#: and cell, which a project of thousands of assets would wait for (docs/performance.md).
RICH_TABLE_ROWS = 200

Cell = Union[str, tuple[str, str]]


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    """Print a table on ``out``: each cell is its text, or (text, rich style) to colour it.

    Cell text is never read as rich markup, whatever it holds.
    """
    if len(rows) <= RICH_TABLE_ROWS:
        table = Table(*columns, box=None)
        for row in rows:
            table.add_row(*(Text(*cell) if isinstance(cell, tuple) else Text(cell) for cell in row))
        out.print(table)
        return
    texts = [[cell[0] if isinstance(cell, tuple) else cell for cell in row] for row in rows]
    widths = [max(len(column), *(len(row[i]) for row in texts)) for i, column in enumerate(columns)]
    lines = (" " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [list(columns), *texts])
    out.file.write("\n".join(lines) + "\n")
    out.file.flush()


def print_text(text: str) -> None:
    """Print ``text`` as it is: no markup, highlighting or wrapping (drawings, JSON)."""
    out.file.write(text + "\n")
    out.file.flush()


def read_only_command() -> None:
    """Settings for a command that loads the project, prints and exits (``list``, ``status``, ``graph``).

    Python's cyclic garbage collector runs every few hundred allocations and, now and then,
    walks every object alive: loading 10,000 assets makes millions, and the collections cost a
    tenth of the command's time while finding next to nothing to free. These commands end
    within seconds, and the process's memory goes back to the OS with it, so they go without.
    """
    gc.disable()


def number(value: Optional[int]) -> str:
    """``1,234`` or ``-`` for unknown."""
    return "-" if value is None else f"{value:,}"
