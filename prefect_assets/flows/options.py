"""What a run is asked to do: the one declaration of the run options.

:class:`RunOptions` is what ``materialize()`` takes as keywords, what the ``materialize``
command's flags fill, what a deployment passes as parameters (and ``run --param`` overrides),
and what the deployable flow :func:`~prefect_assets.flows.entry.materialize_assets` receives.
:func:`~prefect_assets.flows.plan.prepare_run` turns it into a checked plan. A new option is a
field here, then used where a run is prepared; every entry point validates it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prefect_assets.errors import AssetsError, did_you_mean
from prefect_assets.runner_registry import RunnerName


class RunOptions(BaseModel):
    """The options of one run; every field defaults to "as the project says".

    Attributes:
        select: a selection expression (default: every asset).
        partition: the partition key to materialize (a deployment may give ``latest`` or
            ``yesterday``, resolved against the run's scheduled time).
        stale_only: run only missing and stale assets (and what becomes stale on the way).
        runner: another runner type than the project's ``runner.type`` (see the registry).
        max_workers: another worker count than the project's ``runner.max_workers``.
        config: ``{asset key: {field: value}}`` for assets that declare ``config=``.
        timezone: the IANA zone in which ``yesterday`` is counted (default UTC).

    Example:
        >>> RunOptions.parse({"select": "group:raw+", "max_workers": 4}, "materialize()").max_workers
        4
    """

    # A partition given as 20260105 (YAML, JSON, --param) is a key, not a number.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    select: str | None = None
    partition: str | None = None
    stale_only: bool = False
    runner: RunnerName | None = None
    max_workers: int | None = Field(default=None, ge=1)
    config: dict[str, dict[str, Any]] | None = Field(default=None, description="{asset key: {field: value}}")
    timezone: str | None = None

    @classmethod
    def parse(cls, values: Mapping[str, Any], source: str) -> RunOptions:
        """Validate ``values``; every problem goes into one :class:`AssetsError` line.

        Args:
            values: option names and values; ``None`` means unset.
            source: how the user wrote them, prefixed to each problem (``--param``,
                ``materialize()``, ``parameters``).
        """
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise AssetsError(describe_errors(exc, source, cls.model_fields)) from None


def describe_errors(exc: ValidationError, source: str, known: Mapping[str, Any]) -> str:
    """pydantic's errors as one line: ``source key: problem`` for each, unknown keys with a hint."""
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"{source} {key}: unknown{did_you_mean(key, known)}; known: {', '.join(known)}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{source} {key}: {message} (got {error.get('input')!r})")
    return "; ".join(problems)
