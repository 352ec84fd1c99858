"""Deployment specs: what to run, when, and where, read from the project's YAML.

A project declares deployments in ``deployments/*.yaml`` (one mapping per file, or a list of
them) and/or in a ``deployments:`` list in ``prefect_assets.yaml``::

    name: nightly
    select: "group:clean+"
    schedule: {cron: "0 2 * * *", timezone: "Europe/Berlin"}   # or {interval: 3600} or {rrule: "..."}
    partition: yesterday                                        # optional
    work_pool: default                                          # for `deploy`; `serve` needs none
    parameters: {stale_only: true}

Each is validated with pydantic when loaded; every mistake (an unknown field, a bad cron
string, an unknown timezone, an unknown selection) is one :class:`AssetsError` line naming
the file, the field and the fix. Cron and rrule strings go through Prefect's own checks, so
a spec that loads is one the server accepts; nothing here talks to a server.
"""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from prefect.schedules import Cron, RRule
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from prefect_assets.assets.selection import select as select_keys
from prefect_assets.config import Project, expand_env
from prefect_assets.errors import AssetsError, did_you_mean
from prefect_assets.flows.entry import PARTITION_KEYWORDS
from prefect_assets.flows.options import RunOptions

DEPLOYMENTS_DIR = "deployments"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleSpec(_Strict):
    """One schedule: exactly one of ``cron``, ``interval`` (seconds) or ``rrule``.

    ``timezone`` (an IANA name such as ``Europe/Berlin``) is the zone the cron or rrule is read
    in, so ``0 2 * * *`` stays 02:00 local time across daylight-saving changes; it is also the
    zone in which ``partition: yesterday`` is counted.
    """

    cron: str | None = None
    interval: float | None = Field(default=None, gt=0, description="seconds between runs")
    rrule: str | None = None
    timezone: str | None = None
    active: bool = True

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Cron(value)  # Prefect's own check, so what passes here the server accepts
            except ValueError as exc:
                raise ValueError(f"{exc}; write five fields, minute hour day month weekday, e.g. '0 2 * * *'") from None
        return value

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                RRule(value)
            except ValueError as exc:
                raise ValueError(f"{exc}; write an RFC 5545 rule, e.g. 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=6'") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'") from None
        return value

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ScheduleSpec:
        kinds = [k for k in ("cron", "interval", "rrule") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = " and ".join(kinds) if kinds else "none"
            raise ValueError(f"give exactly one of cron, interval or rrule (found {found})")
        return self

    def describe(self) -> str:
        """``cron 0 2 * * * (Europe/Berlin)``, ``every 3600s``, ``rrule ...``."""
        if self.interval is not None:
            text = f"every {self.interval:g}s"
        else:
            text = f"cron {self.cron}" if self.cron is not None else f"rrule {self.rrule}"
        return text + (f" ({self.timezone})" if self.timezone else "")


class SourceSpec(_Strict):
    """Where a worker gets the project's code when it is not on the worker's disk: a git repository.

    The worker (or ``serve``) clones ``git`` at ``branch`` before each run and runs the
    project in ``directory`` of the clone. Without a ``source:`` the code location is the
    project's folder on this machine.
    """

    git: str = Field(min_length=1, description="a URL git can clone: https://..., git@..., file:///...")
    branch: str | None = None
    directory: str = Field(default=".", description="the folder holding prefect_assets.yaml, inside the repository")

    @field_validator("directory")
    @classmethod
    def _inside_the_repository(cls, value: str) -> str:
        path = Path(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{value!r} must be a relative path inside the repository, e.g. 'examples/shop'")
        return value


#: The run options a spec gives fields of their own instead of ``parameters:``.
_SPEC_FIELDS = ("select", "partition", "timezone")

#: What ``parameters:`` may set: the other run options, declared once in RunOptions.
RunParameters = create_model(
    "RunParameters",
    __config__=RunOptions.model_config,
    **{name: (field.annotation, field) for name, field in RunOptions.model_fields.items() if name not in _SPEC_FIELDS},
)


class DeploymentSpec(_Strict):
    """One deployment of a project's assets.

    Attributes:
        name: the deployment's name (letters, digits, ``-``, ``_``, ``.``); on the server it is
            ``materialize-<project>/<name>``.
        select: the selection to materialize (default: every asset).
        schedule: one schedule; ``schedules:`` a list of them (give one or the other).
        partition: a partition key, or ``latest`` / ``yesterday`` resolved against each run's
            scheduled time.
        parameters: run options: ``stale_only``, ``runner``, ``max_workers``, ``config``.
        work_pool: the work pool ``deploy`` registers to (``--pool`` overrides it).
        tags: Prefect tags on the deployment and its runs.
        description: shown in the Prefect UI.
        concurrency: at most this many runs of the deployment at a time (default 1; ``null``
            for no limit). Later runs wait for a slot.
        source: a git repository to clone before each run, instead of this project folder.

    Example:
        >>> spec = DeploymentSpec(name="nightly", schedule={"cron": "0 2 * * *", "timezone": "Europe/Berlin"})
        >>> [s.describe() for s in spec.all_schedules]
        ['cron 0 2 * * * (Europe/Berlin)']
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    select: str = "*"
    schedule: ScheduleSpec | None = None
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    partition: str | None = None
    parameters: RunParameters = Field(default_factory=RunParameters)
    work_pool: str | None = None
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    concurrency: int | None = Field(default=1, ge=1)
    source: SourceSpec | None = None

    _origin: str = PrivateAttr(default="")

    @field_validator("partition", mode="before")
    @classmethod
    def _partition_text(cls, value: Any) -> Any:
        # YAML reads `partition: 2026-01-05` as a date; the key is its ISO text.
        return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value

    @field_validator("partition")
    @classmethod
    def _known_partition_form(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("is empty; give a key such as '2026-01-05', or latest or yesterday")
        near = difflib.get_close_matches(value.lower(), PARTITION_KEYWORDS, n=1, cutoff=0.75)
        if near and value != near[0]:
            # A mistyped keyword would otherwise be taken as an explicit key and run a partition
            # nobody meant; a real key this close to 'latest' or 'yesterday' is unlikely.
            raise ValueError(f"{value!r} looks like a misspelling of {near[0]!r}; write {near[0]}")
        return value

    @field_validator("select")
    @classmethod
    def _non_empty_selection(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty; write '*' for every asset, or e.g. 'group:clean+'")
        return value

    @model_validator(mode="after")
    def _one_schedule_field(self) -> DeploymentSpec:
        if self.schedule is not None and self.schedules:
            raise ValueError("give schedule: (one) or schedules: (a list), not both")
        return self

    @property
    def origin(self) -> str:
        """Where this spec was read from, e.g. ``deployments/nightly.yaml``."""
        return self._origin or "<python>"

    @property
    def all_schedules(self) -> list[ScheduleSpec]:
        return [self.schedule] if self.schedule is not None else list(self.schedules)

    @property
    def timezone(self) -> str | None:
        """The zone ``yesterday`` is counted in: the first schedule's zone that is set."""
        return next((s.timezone for s in self.all_schedules if s.timezone), None)


def load_deployments(project: Project) -> list[DeploymentSpec]:
    """Every deployment of ``project``, from ``deployments/*.yaml`` and ``prefect_assets.yaml``.

    Files are read in name order, then the ``deployments:`` list of ``prefect_assets.yaml``.
    ``${VAR}`` and ``${VAR:-default}`` are expanded as in the project file.

    Raises:
        AssetsError: invalid YAML, an invalid field (naming the file and field), or two
            deployments with the same name.
    """
    entries: list[tuple[str, Any]] = []
    folder = project.root / DEPLOYMENTS_DIR
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    for file in files:
        raw = _read_yaml(file)
        items = raw if isinstance(raw, list) else [] if raw is None else [raw]
        many = isinstance(raw, list)
        entries.extend((f"{file}: [{i}]" if many else str(file), item) for i, item in enumerate(items))
    project_file = project.file or (project.root / "prefect_assets.yaml")
    entries.extend((f"{project_file}: deployments[{i}]", item) for i, item in enumerate(project.config.deployments))

    specs: list[DeploymentSpec] = []
    seen: dict[str, str] = {}
    for origin, item in entries:
        spec = parse_deployment(item, origin)
        if spec.name in seen:
            raise AssetsError(f"{origin}: name: deployment '{spec.name}' is also defined in {seen[spec.name]}; rename one")
        seen[spec.name] = origin
        specs.append(spec)
    return specs


def parse_deployment(raw: Any, origin: str = "<python>") -> DeploymentSpec:
    """Validate one deployment mapping; errors name ``origin`` and the field.

    Example:
        >>> parse_deployment({"name": "hourly", "schedule": {"interval": 3600}}).all_schedules[0].describe()
        'every 3600s'
    """
    if not isinstance(raw, dict):
        raise AssetsError(f"{origin}: a deployment must be a mapping with name:, select:, schedule: ...; got {raw!r}")
    try:
        spec = DeploymentSpec.model_validate(expand_env(raw, origin))
    except ValidationError as exc:
        raise AssetsError(f"{origin}: " + "; ".join(_describe(error) for error in exc.errors())) from None
    spec._origin = origin
    return spec


def check_selections(specs: list[DeploymentSpec], graph: Any) -> None:
    """Check each spec's ``select:`` and ``parameters.config`` keys against the asset graph.

    Raises:
        AssetsError: naming the spec's file and the field, with close matches.
    """
    for spec in specs:
        try:
            select_keys(graph, spec.select)
        except AssetsError as exc:
            raise AssetsError(f"{spec.origin}: select: {exc}") from None
        known = {str(k) for k in graph.nodes}
        for key in spec.parameters.config or {}:
            if key not in known:
                raise AssetsError(
                    f"{spec.origin}: parameters.config: no asset '{key}'{did_you_mean(key, known)}; use full asset keys"
                )


def pick(specs: list[DeploymentSpec], names: list[str] | tuple[str, ...], project_name: str) -> list[DeploymentSpec]:
    """The specs called ``names`` (all of them when ``names`` is empty).

    Raises:
        AssetsError: every unknown name in one line, with close matches.
    """
    if not specs:
        raise AssetsError(
            f"project '{project_name}' has no deployments; add deployments/<name>.yaml "
            "(see docs/deployments.md)"
        )
    if not names:
        return list(specs)
    by_name = {s.name: s for s in specs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        hints = "; ".join(f"'{n}'{did_you_mean(n, by_name)}" for n in unknown)
        raise AssetsError(f"no deployment {hints} in project '{project_name}' (deployments: {', '.join(by_name)})")
    return [by_name[n] for n in names]


def _read_yaml(file: Path) -> Any:
    try:
        return yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise AssetsError(f"{file}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None


def _describe(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc) or "deployment"
    if error["type"] == "extra_forbidden":
        if loc[:1] == ["parameters"] and loc[-1] in DeploymentSpec.model_fields:
            return f"'{where}' is a field of its own; write {loc[-1]}: beside name:, not under parameters:"
        return f"unknown field '{where}'{did_you_mean(loc[-1], _fields_at(loc[:-1]))}; remove it or fix its spelling"
    if error["type"] == "missing":
        return f"{where}: is required"
    if error["type"] == "value_error":  # our own validators: the message already says what and how
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
    if error["type"] == "string_pattern_mismatch" and loc == ["name"]:
        return f"{where}: {error.get('input')!r} is not a valid name; use letters, digits, '-', '_' and '.'"
    return f"{where}: {error['msg']} (got {error.get('input')!r}); fix this value"


def _fields_at(loc: list[str]) -> list[str]:
    model: Any = DeploymentSpec
    for part in loc:
        if part.isdigit():  # an index into schedules:
            continue
        annotation = model.model_fields[part].annotation
        model = next((a for a in (*getattr(annotation, "__args__", ()), annotation) if hasattr(a, "model_fields")), model)
    return list(model.model_fields)


__all__ = [
    "DeploymentSpec",
    "RunParameters",
    "ScheduleSpec",
    "SourceSpec",
    "check_selections",
    "load_deployments",
    "parse_deployment",
    "pick",
]
