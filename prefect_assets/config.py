"""Project configuration: ``prefect_assets.yaml``, parsed with PyYAML and checked with pydantic.

The file is found by walking up from the working directory (or given with ``--project``).
``${VAR}`` and ``${VAR:-default}`` in any string are expanded from the environment before
validation. Every mistake (unknown key, wrong type, unset variable) raises one
:class:`~prefect_assets.errors.AssetsError` line naming the file, the key and the fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from prefect_assets.errors import AssetsError, did_you_mean
from prefect_assets.runner_registry import RunnerConfig

PROJECT_FILE = "prefect_assets.yaml"
_ENV_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IOManagerConfig(_Strict):
    """One named IO manager: an fsspec ``base_uri`` or a custom ``type``."""

    type: str | None = Field(default=None, description="'module:Class' of a custom IOManager subclass")
    base_uri: str | None = Field(default=None, description="any fsspec URL; relative paths are project-relative")
    storage_options: dict[str, Any] = Field(default_factory=dict)
    allow_pickle: bool = True
    options: dict[str, Any] = Field(default_factory=dict, description="format options or custom keyword arguments")


class DefaultsConfig(_Strict):
    """Run options for assets that do not set their own."""

    retries: int = Field(default=0, ge=0)
    retry_delay_seconds: Union[float, list[float]] = 0
    timeout_seconds: float | None = Field(default=None, gt=0)


class LocalServerConfig(_Strict):
    """The local Prefect server (``prefect-assets server start``) that commands use when
    ``PREFECT_API_URL`` is unset."""

    start_on_demand: bool = Field(
        default=False, description="start it when a command needs Prefect and none is running"
    )
    port: int = Field(default=4200, ge=1, le=65535, description="its port on 127.0.0.1 when started")


class ProjectConfig(_Strict):
    name: str = "assets"
    modules: list[str] = Field(default_factory=lambda: ["assets"])
    io_managers: dict[str, IOManagerConfig] = Field(default_factory=dict, validate_default=True)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    defaults: DefaultsConfig = Field(default_factory=DefaultsConfig)
    concurrency_limits: dict[str, int] = Field(default_factory=dict)
    local_server: LocalServerConfig = Field(default_factory=LocalServerConfig)
    deployments: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("io_managers")
    @classmethod
    def _default_io_manager(cls, value: dict[str, IOManagerConfig]) -> dict[str, IOManagerConfig]:
        value.setdefault("default", IOManagerConfig(base_uri="./data"))
        return value


class Project:
    """A loaded project: its root directory, its config file and the validated config."""

    def __init__(self, root: Path, config: ProjectConfig, file: Path | None = None):
        self.root = root
        self.config = config
        self.file = file

    def resolve_uri(self, uri: str) -> str:
        """Make a relative local path absolute against the project root; URLs pass through."""
        if "://" in uri:
            return uri
        path = Path(uri).expanduser()
        return str(path if path.is_absolute() else (self.root / path).resolve())

    def __repr__(self) -> str:
        return f"Project({self.config.name!r}, root={str(self.root)!r})"


def find_project_file(start: str | Path | None = None) -> Path:
    """The ``prefect_assets.yaml`` at ``start`` (a file or directory) or above it."""
    here = Path(start or Path.cwd()).expanduser().resolve()
    if here.is_file():
        return here
    if start is not None and not here.exists():
        raise AssetsError(f"--project {start}: no such file or directory; pass the folder holding {PROJECT_FILE}")
    for folder in [here, *here.parents]:
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    raise AssetsError(
        f"no {PROJECT_FILE} in {here} or any parent directory; run inside a project, pass --project DIR, "
        "or create one with: prefect-assets init DIR"
    )


def load_project(start: str | Path | None = None) -> Project:
    """Find, read, expand and validate the project configuration."""
    file = find_project_file(start)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AssetsError(f"{file}: byte {exc.start} is not UTF-8 ({exc.reason}); save the file as UTF-8") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(file, text, exc) from None
    except RecursionError:
        raise AssetsError(f"{file}: {_TOO_DEEP}") from None
    if raw is None:
        # Not "all defaults": modules would default to 'assets' and fail with a puzzling import error.
        raise AssetsError(
            f"{file} is empty; write at least 'modules: [my_assets]' (the modules holding your @asset functions), "
            "or scaffold a project with: prefect-assets init DIR"
        )
    if not isinstance(raw, dict):
        raise AssetsError(
            f"{file}: the top level is a {type(raw).__name__}, not a mapping; "
            "write keys such as 'name: shop' and 'modules: [my_assets]', one per line"
        )
    return Project(file.parent, parse_config(raw, source=str(file)), file)


def parse_config(raw: dict[str, Any], source: str = PROJECT_FILE) -> ProjectConfig:
    """Validate a config mapping (already read from YAML); errors name ``source``."""
    try:
        expanded = expand_env(raw, source)
    except RecursionError:
        raise AssetsError(f"{source}: {_TOO_DEEP}") from None
    try:
        return ProjectConfig.model_validate(expanded)
    except ValidationError as exc:
        raise AssetsError(f"{source}: " + "; ".join(_describe(error) for error in exc.errors())) from None


def expand_env(value: Any, source: str, path: str = "") -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree."""
    if isinstance(value, dict):
        return {k: expand_env(v, source, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        found = os.environ.get(name)
        if default is not None and not found:
            # As in the shell, ${VAR:-default} also applies when VAR is set but empty (an
            # empty base_uri would otherwise put the data in the project folder itself).
            return default
        if found is not None:
            return found
        raise AssetsError(
            f"{source}: {_one_line(path)}: environment variable {name} is not set; export it or write ${{{name}:-default}}"
        )

    return _ENV_VAR.sub(substitute, value)


#: A YAML alias can make a list that holds itself (``&a [*a]``), which no walk of the tree ends.
_TOO_DEEP = "a value is nested too deeply or holds itself (an alias such as '&a [*a]'); write it out flat"


def _yaml_error(file: Path, text: str, exc: yaml.YAMLError) -> AssetsError:
    """PyYAML's error as one line: its own text puts the place on a second line."""
    if isinstance(exc, yaml.reader.ReaderError):
        # The reader rejects a character before parsing starts: no mark, only an offset.
        where = f" line {text.count(chr(10), 0, exc.position) + 1}"
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        problem = f"{exc.reason}: U+{code:04X}"
    else:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return AssetsError(f"{file}:{where} is not valid YAML ({problem}); fix the syntax")


def _describe(error: dict[str, Any]) -> str:
    loc = _one_line(".".join(str(part) for part in error["loc"]))
    if error["type"] == "extra_forbidden":
        parent_loc, name = error["loc"][:-1], str(error["loc"][-1])
        known = _known_fields(parent_loc)
        return f"unknown key '{loc}'{did_you_mean(name, known)}; remove it or fix its spelling"
    if "storage_options" in error["loc"] or "storage_options" in repr(error.get("input")):
        # The value may be a credential (or hold one, e.g. a list of IO managers given where a
        # mapping belongs): name the place, never echo the input.
        return f"{loc}: {error['msg']}; fix this value"
    return f"{loc}: {error['msg']} (got {error.get('input')!r}); fix this value"


def _one_line(path: str) -> str:
    """A key path as written, with line breaks and other control characters escaped.

    Keys come from the file, and a quoted YAML key may hold a newline; the error stays one line.
    """
    return path if path.isprintable() else repr(path)[1:-1]


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    model: Any = ProjectConfig
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            # a dict entry (e.g. io_managers.<name>) has the dict's value model
            args = getattr(model, "__args__", ())
            model = args[-1] if args else model
            continue
        model = field.annotation
        args = getattr(model, "__args__", ())
        if args and hasattr(args[-1], "model_fields"):
            model = args[-1]
    return list(getattr(model, "model_fields", {}))
