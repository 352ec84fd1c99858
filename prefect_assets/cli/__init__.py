"""The ``prefect-assets`` command: parse, call, print.

Each module registers its commands on the shared Typer ``app``. User mistakes
(:class:`~prefect_assets.errors.AssetsError`) print as one line on stderr with exit code 2 and
no traceback; ``materialize`` exits 1 when an asset failed. Prefect is imported only by the
commands that talk to it, so ``list``, ``graph`` and ``status`` answer quickly.
"""

from __future__ import annotations

import atexit
import gc
import sys

import typer

from prefect_assets.cli import assets, init  # noqa: F401 - each module registers its commands
from prefect_assets.cli import deployments  # noqa: F401 - registers deploy, serve, run
from prefect_assets.cli import cleanup  # noqa: F401 - registers gc
from prefect_assets.cli import server  # noqa: F401 - registers server start|stop|status
from prefect_assets.cli.common import app, err


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the command, exit with its code.

    Usage mistakes (an unknown option, a missing value, ``--max-workers 0``) print one line
    and how to get help, with exit code 2, instead of click's usage block.
    """
    # When the command is done the process ends, and Python's shutdown runs full garbage
    # collections over everything still alive, Prefect's many pydantic objects among them: the
    # process lingered after its summary. Frozen objects are never collected, so the last exit
    # step freezes them and leaves them to the OS. Every other exit handler runs first (atexit
    # runs the first registered last): Prefect's send its queued events and logs and stop the
    # embedded server, which saves what it holds. Only ``__del__`` of objects in reference
    # cycles is skipped, which Python never promised at exit.
    atexit.unregister(gc.freeze)  # registered once, however often main() runs in a process
    atexit.register(gc.freeze)
    try:
        code = app(args=argv, prog_name="prefect-assets", standalone_mode=False)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(1)
    except typer.TyperException as exc:  # click's errors (typer vendors click)
        command = getattr(getattr(exc, "ctx", None), "command_path", None)
        err.print(f"error: {exc.format_message()}", highlight=False, markup=False, soft_wrap=True)
        if command:  # a usage error: it knows the command it belongs to
            err.print(f"Try '{command} -h' for help.", highlight=False, markup=False)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
