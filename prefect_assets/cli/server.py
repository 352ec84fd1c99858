"""``prefect-assets server start|stop|status``: a local Prefect server for every command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from prefect_assets.cli.common import app, err, out, user_errors
from prefect_assets.config import find_project_file, load_project
from prefect_assets.deployments import local_server
from prefect_assets.errors import AssetsError

server_app = typer.Typer(
    help="A local Prefect server that outlives the command: runs start at once and keep their history.",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")


@server_app.command()
@user_errors
def start(
    port: Optional[int] = typer.Option(
        None, "--port", min=1, max=65535,
        help=f"Port on 127.0.0.1 (default: the project's local_server.port, else {local_server.DEFAULT_PORT}).",
    ),
    project: Optional[Path] = typer.Option(None, "--project", "-p", metavar="DIR", help="Project folder for its port."),
) -> None:
    """Start Prefect's server in the background, or report the one already running."""
    if local_server.find_running() is None:
        out.print("starting the Prefect server (a new database takes a little longer)...", highlight=False)
    server, started = local_server.start(port or _project_port(project))
    out.print(f"Prefect server {'started' if started else 'already running'} (pid {server.pid})", highlight=False)
    _describe(server)
    out.print("stop it with: prefect-assets server stop", highlight=False)


@server_app.command()
@user_errors
def stop() -> None:
    """Stop the local Prefect server and wait for it to exit."""
    server = local_server.stop()
    if server is None:
        out.print(f"no local Prefect server is running (home {local_server.prefect_home()})", highlight=False)
        return
    out.print(f"stopped the Prefect server at {server.ui_url} (pid {server.pid})", highlight=False)


@server_app.command()
@user_errors
def status() -> None:
    """Is the local Prefect server running? Exit 0 if it is, 1 if not."""
    server = local_server.find_running()
    if server is None:
        out.print(f"no local Prefect server is running (home {local_server.prefect_home()}); "
                  "start one with: prefect-assets server start", highlight=False)
        raise typer.Exit(1)
    out.print(f"Prefect server running (pid {server.pid})", highlight=False)
    _describe(server)


def _describe(server: local_server.LocalServer) -> None:
    out.print(f"  UI:       {server.ui_url}", highlight=False)
    out.print(f"  API:      {server.api_url}", highlight=False)
    out.print(f"  home:     {server.home} (database, log {server.home / local_server.LOG_FILE})", highlight=False)
    configured = os.environ.get("PREFECT_API_URL")
    if configured and configured.rstrip("/") != server.api_url:
        err.print(f"note: PREFECT_API_URL is set to {configured}: commands use that server, not this one",
                  highlight=False)
    else:
        out.print("  materialize, serve, deploy and run use it while PREFECT_API_URL is unset", highlight=False)


def _project_port(project: Optional[Path]) -> int:
    """The project's ``local_server.port``; the default outside a project."""
    try:
        find_project_file(project)
    except AssetsError:
        if project is not None:
            raise
        return local_server.DEFAULT_PORT
    return load_project(project).config.local_server.port
