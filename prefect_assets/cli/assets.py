"""Asset commands: ``list``, ``graph``, ``status``, ``materialize``, ``wipe``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from prefect_assets.assets.selection import select as select_keys
from prefect_assets.assets.selection import upstream
from prefect_assets.assets.versions import graph_status
from prefect_assets.cli import render
from prefect_assets.cli.common import (
    ProjectOption,
    SelectOption,
    app,
    err,
    note_embedded_server,
    number,
    out,
    prefect_server,
    prepare_prefect_environment,
    print_table,
    print_text,
    read_only_command,
    user_errors,
)
from prefect_assets.definitions import Definitions
from prefect_assets.errors import AssetsError
from prefect_assets.flows.options import RunOptions
from prefect_assets.flows.plan import PlannedAsset, fresh_without_a_run, prepare_run, preview
from prefect_assets.runner_registry import RUNNERS


class GraphFormat(str, Enum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"


#: ``--runner`` choices: the runner registry's names.
RunnerType = Enum("RunnerType", {name: name for name in RUNNERS}, type=str)


JsonOption = typer.Option(False, "--json", help="Print JSON for scripts (fields in the README) instead of a table.")


@app.command("list")
@user_errors
def list_assets(
    project: Optional[Path] = ProjectOption, select: Optional[str] = SelectOption, as_json: bool = JsonOption
) -> None:
    """Keys, groups, upstream assets and the last materialization."""
    read_only_command()
    defs = Definitions.load(project)
    keys = select_keys(defs.graph, select)
    records = defs.read_records(keys)
    if as_json:
        print_text(render.json_assets(
            {
                "key": str(key),
                "group": defs.definition(key).group,
                "upstream": sorted(str(k) for k in defs.graph.upstream_of(key)),
                "io_manager": defs.definition(key).io_manager,
                "tags": dict(defs.definition(key).tags),
                "last_materialized": getattr(records.get(key), "timestamp", None),
            }
            for key in keys
        ))
        return
    print_table(
        ["asset", "group", "upstream", "io manager", "last materialized"],
        [
            (
                str(key),
                defs.definition(key).group,
                ", ".join(str(k) for k in sorted(defs.graph.upstream_of(key))) or "-",
                defs.definition(key).io_manager or "-",
                _when(records.get(key)),
            )
            for key in keys
        ],
    )


@app.command()
@user_errors
def graph(
    project: Optional[Path] = ProjectOption,
    select: Optional[str] = SelectOption,
    format: Optional[GraphFormat] = typer.Option(  # noqa: A002
        None, "--format", "-f", help="text (default), mermaid or dot."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON for scripts (key, group, upstream, downstream) instead of a drawing."
    ),
) -> None:
    """Draw the asset graph."""
    read_only_command()
    if as_json and format is not None:
        raise AssetsError(f"--json and --format {format.value} both choose the output; give one of them")
    defs = Definitions.load(project)
    keys = select_keys(defs.graph, select)
    if as_json:
        drawing = render.graph_json
    else:
        drawing = {GraphFormat.mermaid: render.mermaid, GraphFormat.dot: render.dot}.get(format, render.text_tree)
    print_text(drawing(defs.graph, keys))


@app.command()
@user_errors
def status(
    project: Optional[Path] = ProjectOption,
    select: Optional[str] = SelectOption,
    verify: bool = typer.Option(False, "--verify", help="Also re-hash every stored file against its record."),
    as_json: bool = JsonOption,
) -> None:
    """Fresh, stale (with the cause) or missing; last run, size and rows.

    Stored files are checked against their records (present, same size; with --verify, same
    content hash): data deleted behind our back shows as missing (data deleted).
    """
    read_only_command()
    defs = Definitions.load(project)
    keys = select_keys(defs.graph, select)
    records = defs.read_records(upstream(defs.graph, keys))
    statuses = graph_status(defs.graph, records, keys, defs.stored_data_statuses(records, rehash=verify))
    rows = [(key, statuses[key], records.get(key)) for key in keys]
    if as_json:
        print_text(render.json_assets(
            {
                "key": str(key),
                "status": state.state,
                "cause": state.cause,
                "last_materialized": getattr(record, "timestamp", None),
                "bytes": getattr(record, "bytes", None),
                "rows": getattr(record, "rows", None),
                "data_version": getattr(record, "data_version", None),
            }
            for key, state, record in rows
        ))
        return
    colours = {"fresh": "green", "stale": "yellow", "missing": "red"}
    print_table(
        ["asset", "status", "last materialized", "bytes", "rows", "data version"],
        [
            (
                str(key),
                (str(state), colours[state.state]),
                _when(record),
                number(getattr(record, "bytes", None)),
                number(getattr(record, "rows", None)),
                getattr(record, "data_version", None) or "-",
            )
            for key, state, record in rows
        ],
    )


@app.command()
@user_errors
def materialize(
    project: Optional[Path] = ProjectOption,
    select: Optional[str] = SelectOption,
    partition: Optional[str] = typer.Option(
        None, "--partition", metavar="KEY", help="Partition key to materialize (for partitioned assets)."
    ),
    stale: bool = typer.Option(False, "--stale", help="Only missing and stale assets (and what they make stale)."),
    runner: Optional[RunnerType] = typer.Option(None, "--runner", help="Override the configured task runner."),
    max_workers: Optional[int] = typer.Option(None, "--max-workers", min=1, metavar="N", help="Worker threads/processes."),
    config: Optional[str] = typer.Option(
        None, "--config", metavar="JSON", help='Asset config: {"asset/key": {"field": 1}}; unknown fields are errors.'
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Also print Prefect's flow and task run logs (tracebacks included) here."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would run and why, and what would be skipped; run nothing."
    ),
) -> None:
    """Materialize the selection through a Prefect flow run; exit 1 if an asset failed."""
    prepare_prefect_environment(verbose)  # before the project's modules, which may import Prefect
    # The run is planned before Prefect is imported, which is slow: a mistake in the project,
    # the selection or the config is reported at once, and a dry run or a --stale run with
    # nothing to do ends without Prefect.
    defs = Definitions.load(project)
    plan = prepare_run(defs, RunOptions.parse(
        dict(select=select, partition=partition, stale_only=stale, runner=runner.value if runner else None,
             max_workers=max_workers, config=_parse_config(config)), "option",
    ))
    if dry_run:
        _print_preview(preview(defs, plan))
        return
    result = fresh_without_a_run(defs, plan) if plan.partition is None else None
    if result is not None:
        _print_summary(result)
        out.print(f"all {len(result.assets)} selected assets are fresh: nothing to run, no flow run created")
        return
    from prefect_assets.cli.progress import RunProgress
    from prefect_assets.flows.build import materialize as run_materialize

    with prefect_server(_server_options(defs)) as server:
        with RunProgress(out, total=len(plan.keys)) as progress:
            result = run_materialize(defs, plan=plan, on_event=progress.on_event, on_recording=progress.on_recording)
        _print_summary(result)
        out.print(f"flow run {result.flow_run_id}: {result.state}")
        if server is None:
            note_embedded_server()
    if result.failed:
        retry = ",".join(f"{r.key}+" for r in result.failed)
        err.print(f"{len(result.failed)} asset(s) failed. After fixing, finish the job with:\n"
                  f"  prefect-assets materialize --select '{retry}'", highlight=False)
        raise typer.Exit(1)


@app.command()
@user_errors
def wipe(
    project: Optional[Path] = ProjectOption,
    select: str = typer.Option(
        ..., "--select", "-s", metavar="SELECTION", help="What to delete (required; '*' for everything)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete the stored data and records of the selected assets.

    Lists what it will delete (assets, bytes) and asks first, unless --yes.
    """
    defs = Definitions.load(project)
    keys = select_keys(defs.graph, select)
    try:
        records = defs.read_records(keys)
    except AssetsError:  # a record that does not parse: wipe is how one gets rid of it
        records = {}
    stored = [key for key in keys if records.get(key) is not None]
    size = sum(records[key].bytes or 0 for key in stored)
    plural = "" if len(keys) == 1 else "s"
    what = f"all {len(keys)} asset{plural}" if len(keys) == len(defs.graph.nodes) else f"{len(keys)} asset{plural}"
    out.print(
        f"wipe deletes the data and records of {what}, {len(stored)} of them stored ({number(size)} bytes): "
        + ", ".join(str(k) for k in keys),
        highlight=False, markup=False,
    )
    if not yes and not typer.confirm("Delete them?", default=False):
        err.print("nothing deleted", highlight=False)
        raise typer.Exit(1)
    for key in keys:
        io_manager = defs.io_manager_for(key)
        if io_manager is not None:
            io_manager.delete(key)
        defs.record_store_for(key).delete(key)
    out.print(f"wiped {len(keys)} asset(s), {number(size)} bytes", highlight=False)


def _print_preview(planned: list[PlannedAsset]) -> None:
    colours = {"run": "green", "fresh": "cyan", "skip": "yellow", "fail": "red"}
    print_table(["asset", "would", "why"], [(str(p.key), (p.action, colours[p.action]), p.reason) for p in planned])
    counts = {action: sum(1 for p in planned if p.action == action) for action in colours}
    out.print(f"dry run: {counts['run']} would run, {counts['fresh']} are fresh, {counts['skip']} would be skipped, "
              f"{counts['fail']} would fail; nothing ran, no flow run created", highlight=False)


def _print_summary(result: Any) -> None:
    """One line per asset; a failed one says why in one line. An ``attempts`` column appears
    when an asset was retried."""
    colours = {"materialized": "green", "fresh": "cyan", "skipped": "yellow", "failed": "red"}
    rows = result.summary_rows()
    retried = any(row["attempts"] > 1 for row in rows)
    columns = ["asset", "status", "seconds", *(["attempts"] if retried else []), "rows", "bytes", "detail"]
    out.print("materialize summary", style="bold", highlight=False)
    print_table(columns, [
        (
            row["asset"], (row["status"], colours[row["status"]]), f"{row['seconds']:.2f}",
            *([str(row["attempts"] or "-")] if retried else []),
            number(row["rows"]), number(row["bytes"]), row["reason"],
        )
        for row in rows
    ])


def _server_options(defs: Definitions) -> Any:
    return defs.project.config.local_server if defs.project is not None else None


def _parse_config(text: Optional[str]) -> Optional[dict[str, Any]]:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssetsError(f"--config is not valid JSON ({exc.msg}); write e.g. '{{\"key\": {{\"field\": 1}}}}'") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise AssetsError('--config must map asset keys to objects, e.g. \'{"daily": {"limit": 5}}\'')
    return value


def _when(record: Any) -> str:
    return record.timestamp[:19].replace("T", " ") if record is not None else "-"
