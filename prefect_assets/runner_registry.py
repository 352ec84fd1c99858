"""The runners a run can use: the one place their names and options are declared.

A runner is a Prefect task runner plus what a run needs around it (a forkserver, a local
cluster started early, workers that share the run's API). Each lives in a module of
``prefect_assets/flows/runners/`` that defines ``BACKEND``
(a :class:`~prefect_assets.flows.runners.backend.RunnerBackend`); :data:`RUNNERS` names them.
The project file's ``runner:`` section, ``--runner`` on the command line, a deployment's
``parameters: {runner: ...}``, the deployable flow's parameter and the docs all take their
choices from here.

Adding a runner is one backend module and one :class:`RunnerSpec` line below.

The table names each backend by its module path instead of importing it: this module sits
with the project config, which validates ``runner:`` against it, below the flows room that
holds the backends; and a backend's module (Prefect, Dask, Ray) is imported only when a run
uses it, after its extra's package is found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from prefect_assets.errors import AssetsError, did_you_mean


@dataclass(frozen=True)
class RunnerSpec:
    """One runner: its name, where its backend lives, and what it accepts.

    Attributes:
        name: the value of ``runner.type`` and ``--runner``.
        module: the module whose ``BACKEND`` runs it.
        task_runner: the Prefect task runner it is, for the docs.
        workers: what ``max_workers`` counts on this runner, and its default.
        address: what ``address:`` names on this runner, or ``None`` if it takes none.
        extra: the ``prefect-assets[extra]`` that installs it and the package it provides.
    """

    name: str
    module: str
    task_runner: str
    workers: str
    address: str | None = None
    extra: tuple[str, str] | None = None


RUNNERS: dict[str, RunnerSpec] = {spec.name: spec for spec in (
    RunnerSpec("thread", "prefect_assets.flows.runners.thread", "`ThreadPoolTaskRunner`",
               "threads; default `min(32, cores + 4)` (Prefect's own default is unbounded)"),
    RunnerSpec("process", "prefect_assets.flows.runners.process", "`ProcessPoolTaskRunner`",
               "processes; default one per core"),
    RunnerSpec("dask", "prefect_assets.flows.runners.dask", "`prefect_dask.DaskTaskRunner`",
               "size of a local cluster: n worker processes, one thread each; default one per core",
               address="`tcp://host:8786`: an existing scheduler", extra=("dask", "prefect_dask")),
    RunnerSpec("ray", "prefect_assets.flows.runners.ray", "`prefect_ray.RayTaskRunner`",
               "CPUs of a local Ray instance", address="`ray://host:10001`: an existing cluster",
               extra=("ray", "prefect_ray")),
)}


def _known_runner(name: Any) -> Any:
    if isinstance(name, str) and name not in RUNNERS:
        raise ValueError(f"unknown runner {name!r}{did_you_mean(name, list(RUNNERS))}; use {', '.join(RUNNERS)}")
    return name


#: A runner's name, checked against :data:`RUNNERS` wherever a model or a flow parameter
#: declares one (a misspelt name gets a close match; JSON schemas list the choices).
RunnerName = Annotated[Literal[tuple(RUNNERS)], BeforeValidator(_known_runner)]


class RunnerConfig(BaseModel):
    """The ``runner:`` section of ``prefect_assets.yaml``: which runner, how many workers, where.

    Example:
        >>> RunnerConfig(type="dask", max_workers=4).type
        'dask'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: RunnerName = Field(default="thread", description=" | ".join(RUNNERS))
    max_workers: int | None = Field(default=None, ge=1, description="worker count; see each runner")
    address: str | None = Field(default=None, description="an existing dask or ray cluster")

    @model_validator(mode="after")
    def _options_fit(self) -> RunnerConfig:
        if self.address is not None and RUNNERS[self.type].address is None:
            takers = " or ".join(n for n, s in RUNNERS.items() if s.address is not None)
            raise ValueError(f"address is for {takers} clusters, not the {self.type} runner; "
                             f"remove address or set type to one of them")
        if self.address is not None and self.max_workers is not None:
            # An existing cluster's size is set where its workers start; silently ignoring the
            # option would promise a bound that does not hold.
            raise ValueError(f"max_workers cannot resize the existing {self.type} cluster at {self.address}; "
                             "size it where its workers start (e.g. dask worker --nworkers N) and drop max_workers")
        return self


def runner_config(configured: Any, runner: str | None = None, max_workers: int | None = None) -> RunnerConfig:
    """The runner a run uses: the project's ``runner:`` section with a run's overrides applied.

    Args:
        configured: the project's section, a mapping or a :class:`RunnerConfig`.
        runner: another runner type for this run (``--runner``); the configured cluster
            address, meant for the configured type, is dropped with it.
        max_workers: another worker count for this run (``--max-workers``).

    Raises:
        AssetsError: an unknown runner, a count below 1, or options that do not fit the runner.
    """
    section = dict(configured.model_dump(exclude_unset=True) if isinstance(configured, BaseModel) else configured or {})
    if runner is not None and runner != section.get("type", "thread"):
        section.update(type=runner, address=None)
    if max_workers is not None:
        section["max_workers"] = max_workers
    try:
        return RunnerConfig.model_validate(section)
    except ValidationError as exc:
        raise AssetsError("; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    where = ".".join(["runner", *map(str, error["loc"])])
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def runner_table() -> str:
    """The runners as the Markdown table of ``docs/runners.md`` (a test keeps the two equal)."""
    rows = ["| `type` | Prefect task runner | `max_workers` | `address` | install |", "| --- | --- | --- | --- | --- |"]
    for spec in RUNNERS.values():
        name = f"`{spec.name}`" + (" (default)" if spec.name == RunnerConfig().type else "")
        install = f"`pip install 'prefect-assets[{spec.extra[0]}]'`" if spec.extra else "built in"
        rows.append(f"| {name} | {spec.task_runner} | {spec.workers} | {spec.address or '-'} | {install} |")
    return "\n".join(rows)
