"""``prefect-assets gc``: find and remove what interrupted runs left in storage.

A run removes the leftovers of killed runs where it stores (see
:meth:`~prefect_assets.definitions.Definitions.clean_leftovers`); ``gc`` does it for the whole
project at once, and also finds files an asset no longer uses (another format than its record's)
and temporaries of versions before 0.3.0. It never touches a file a record names, and skips any
asset being stored right now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prefect_assets.cli.common import ProjectOption, app, err, number, out, user_errors
from prefect_assets.definitions import Definitions
from prefect_assets.io_managers import FsspecIOManager
from prefect_assets.io_managers.leftovers import sweep


@app.command()
@user_errors
def gc(
    project: Optional[Path] = ProjectOption,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove what interrupted runs left: temporary files, unfinished uploads, abandoned locks.

    Lists what it found (and its size) and asks first, unless --yes. Exits 0 when nothing is left.
    """
    defs = Definitions.load(project)
    records = defs.read_records(defs.graph.nodes)
    managers = {id(m): m for m in defs.io_managers.values() if isinstance(m, FsspecIOManager)}
    found = {
        manager.name: (manager, sweep(manager, remove=False, records=[r for r in records.values() if r is not None]))
        for manager in managers.values()
    }
    leftovers = [leftover for _manager, items in found.values() for leftover in items]
    if not leftovers:
        out.print("nothing to remove", highlight=False)
        return
    size = sum(leftover.bytes or 0 for leftover in leftovers)
    for name, (manager, items) in found.items():
        for leftover in items:
            where = manager.redact.uri(manager.filesystem.unstrip_protocol(leftover.path))
            out.print(f"{leftover.kind}: {where} ({number(leftover.bytes)} bytes) [io_managers.{name}]",
                      highlight=False, markup=False)
    out.print(f"gc removes {len(leftovers)} leftover(s), {number(size)} bytes", highlight=False)
    if not yes and not typer.confirm("Remove them?", default=False):
        err.print("nothing removed", highlight=False)
        raise typer.Exit(1)
    removed = [x for manager, _items in found.values()
               for x in sweep(manager, remove=True, records=[r for r in records.values() if r is not None])]
    out.print(f"removed {len(removed)} leftover(s)", highlight=False)
