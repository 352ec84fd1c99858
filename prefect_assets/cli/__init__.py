"""The ``prefect-assets`` command: parse, call, print.

Each module registers its commands on the shared Typer ``app``. User mistakes
(:class:`~prefect_assets.errors.AssetsError`) print as one line on stderr with exit code 2 and
no traceback; ``materialize`` exits 1 when an asset failed. Prefect is imported only by the
commands that talk to it, so ``list``, ``graph`` and ``status`` answer quickly.
"""

from __future__ import annotations

from prefect_assets.cli import assets, init  # noqa: F401 - each module registers its commands
from prefect_assets.cli import deployments  # noqa: F401 - registers deploy, serve, run
from prefect_assets.cli.common import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
