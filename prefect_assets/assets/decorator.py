"""The ``@asset`` decorator and the definition it produces.

``@asset`` turns a function into an :class:`AssetDefinition`: its key, its declared inputs
(parameter names) and its run options. Everything that can be checked without the rest of the
project is checked here, when the module is imported, so a typo surfaces immediately.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from prefect_assets.assets.code_version import PinnedSource, bytecode_version, pin_source
from prefect_assets.assets.keys import AssetKey, CoercibleToKey
from prefect_assets.errors import AssetsError

#: Parameters filled by the framework rather than loaded from upstream assets.
INJECTED_PARAMS = frozenset({"context", "config"})

#: Sentinel: the asset was decorated without ``io_manager=``, so the project default applies.
DEFAULT_IO_MANAGER = "default"


@dataclass(frozen=True)
class AssetDefinition:
    """An asset: a key, the function that computes it, and how to run and store it.

    Made by :func:`asset`; calling it calls the underlying function, so assets stay
    unit-testable as plain functions.
    """

    key: AssetKey
    fn: Callable[..., Any]
    input_params: tuple[str, ...]
    explicit_ins: Mapping[str, AssetKey] = field(default_factory=dict)
    deps: tuple[AssetKey, ...] = ()
    group: str = "default"
    io_manager: str | None = DEFAULT_IO_MANAGER
    format: str | None = None
    retries: int | None = None
    retry_delay_seconds: float | list[float] | None = None
    timeout_seconds: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    explicit_code_version: str | None = None
    partitions: Any = None
    concurrency: str | None = None
    config_schema: type | None = None
    wants_context: bool = False
    promised_return: str | None = None
    pinned_source: PinnedSource | None = field(default=None, repr=False, compare=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @cached_property
    def code_version(self) -> str:
        """``code_version=`` when given, else a hash of the normalized source.

        Computed on first use, not when the module is imported: ``list`` and ``graph`` never
        need it, and ``status`` only for the assets it shows (and their upstream). The source
        was pinned at decoration (see :mod:`~prefect_assets.assets.code_version`), so a late
        computation still describes the code that was imported; it goes through a disk
        cache keyed by the module's content.
        """
        if self.explicit_code_version:
            return self.explicit_code_version
        if self.pinned_source is None:
            return bytecode_version(self.fn)
        return self.pinned_source.code_version(self.fn)

    @property
    def source(self) -> str:
        """``file:line`` of the function, for error messages."""
        code = getattr(self.fn, "__code__", None)
        if code is None:
            return repr(self.fn)
        return f"{code.co_filename}:{code.co_firstlineno}"


def asset(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    key_prefix: str | Sequence[str] | None = None,
    group: str | None = None,
    deps: Sequence[CoercibleToKey | AssetDefinition] = (),
    ins: Mapping[str, CoercibleToKey | AssetDefinition] | None = None,
    io_manager: str | None = DEFAULT_IO_MANAGER,
    format: str | None = None,  # noqa: A002 - the user-facing option is called format
    retries: int | None = None,
    retry_delay_seconds: float | Sequence[float] | None = None,
    timeout_seconds: float | None = None,
    tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    description: str | None = None,
    code_version: str | None = None,
    partitions: Any = None,
    concurrency: str | None = None,
    config: type | None = None,
) -> Any:
    """Declare a software-defined asset.

    Parameters of the decorated function name its upstream assets: a parameter matches an
    asset whose last key part has that name (when unique) or whose full key is written with
    ``__`` for ``/``. ``context`` receives an :class:`AssetContext`; ``config`` receives an
    instance of the ``config`` model.

    Args:
        name: last key part (default: the function name).
        key_prefix: parts placed before ``name``, e.g. ``"reports"`` or ``["a", "b"]``.
        group: the group the asset belongs to (default ``"default"``).
        deps: upstream assets that must run first but are not loaded.
        ins: explicit ``{parameter: upstream key}`` for parameters that do not match a name.
        io_manager: name of the IO manager that stores the result; ``None`` stores nothing.
        format: storage format override (``parquet``, ``json``, ``raw``, ``pickle``).
        retries: Prefect task retries (default: the project's ``defaults.retries``).
        retry_delay_seconds: delay between retries, a number or a list per attempt.
        timeout_seconds: Prefect task timeout.
        tags: string labels, selectable with ``tag:k=v`` and attached to the Prefect task.
        metadata: static metadata recorded with every materialization.
        description: shown by ``list``; defaults to the docstring.
        code_version: defaults to a hash of the normalized source.
        partitions: a partitions definition.
        concurrency: a Prefect global concurrency limit name this asset takes a slot of.
        config: a pydantic model class; an instance is passed as ``config``.

    Raises:
        AssetsError: the options do not fit the function's signature.

    Example:
        >>> @asset(group="raw")
        ... def numbers() -> list:
        ...     return [1, 2, 3]
        >>> @asset
        ... def total(numbers: list) -> int:
        ...     return sum(numbers)
        >>> str(total.key), total.input_params
        ('total', ('numbers',))
    """

    def decorate(func: Callable[..., Any]) -> AssetDefinition:
        return _make_definition(
            func, name=name, key_prefix=key_prefix, group=group, deps=deps, ins=ins or {},
            io_manager=io_manager, format=format, retries=retries,
            retry_delay_seconds=retry_delay_seconds, timeout_seconds=timeout_seconds,
            tags=tags or {}, metadata=metadata or {}, description=description,
            code_version=code_version, partitions=partitions, concurrency=concurrency, config=config,
        )

    return decorate(fn) if fn is not None else decorate


def _make_definition(func: Callable[..., Any], **options: Any) -> AssetDefinition:
    if not callable(func) or not hasattr(func, "__code__"):
        raise AssetsError(f"@asset decorates a function, got {func!r}")
    where = f"{func.__module__}.{func.__qualname__}"
    params, variadic, returns = _signature(func)
    if variadic is not None:
        raise AssetsError(
            f"asset {where}: parameter '{variadic}' is *args/**kwargs; name each upstream asset as its own parameter"
        )
    explicit_ins = {p: _to_key(k) for p, k in options["ins"].items()}
    unknown = sorted(set(explicit_ins) - set(params))
    if unknown:
        raise AssetsError(
            f"asset {where}: ins= names {unknown} but the function has parameters {list(params)}; "
            "make the ins keys match parameter names"
        )
    config = options["config"]
    if "config" in params and config is None:
        raise AssetsError(f"asset {where}: has a 'config' parameter but no config= model; pass @asset(config=MyConfig)")
    if config is not None and not (isinstance(config, type) and hasattr(config, "model_validate")):
        raise AssetsError(f"asset {where}: config= must be a pydantic model class, got {config!r}")
    _check_run_options(where, options)

    prefix = options["key_prefix"]
    prefix_parts = (prefix,) if isinstance(prefix, str) else tuple(prefix or ())
    key = AssetKey(tuple(p for part in prefix_parts for p in part.split("/")) + (options["name"] or func.__name__,))
    tags = options["tags"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise AssetsError(f"asset {where}: tags must map strings to strings, got {dict(tags)!r}")
    delay = options["retry_delay_seconds"]
    return AssetDefinition(
        key=key,
        fn=func,
        input_params=tuple(p for p in params if p not in INJECTED_PARAMS),
        explicit_ins=explicit_ins,
        deps=tuple(_to_key(d) for d in options["deps"]),
        group=options["group"] or "default",
        io_manager=options["io_manager"],
        format=options["format"],
        retries=options["retries"],
        retry_delay_seconds=list(delay) if isinstance(delay, (list, tuple)) else delay,
        timeout_seconds=options["timeout_seconds"],
        tags=dict(tags),
        metadata=dict(options["metadata"]),
        description=options["description"] or inspect.getdoc(func),
        explicit_code_version=options["code_version"] or None,
        pinned_source=None if options["code_version"] else pin_source(func),
        partitions=options["partitions"],
        concurrency=options["concurrency"],
        config_schema=config,
        wants_context="context" in params,
        promised_return=_promised_return(func, returns),
    )


def _signature(func: Callable[..., Any]) -> tuple[tuple[str, ...], str | None, Any]:
    """``func``'s parameter names in order, its first ``*args``/``**kwargs`` name (or None) and
    its return annotation (or ``inspect.Signature.empty``), as :func:`inspect.signature` says.

    A plain function is read straight from its code object, as ``inspect.signature`` itself
    does, without building its ``Parameter`` objects: ten times faster, which a project of
    10,000 assets feels at every import. Anything else (wrapped functions, a ``__signature__``,
    callables) goes through ``inspect.signature``.
    """
    if type(func) is types.FunctionType and not hasattr(func, "__wrapped__") and not hasattr(func, "__signature__"):
        code = func.__code__
        # co_varnames starts with the positional parameters, then the keyword-only ones, then
        # the *args and **kwargs names; the signature puts *args before the keyword-only ones.
        names = list(code.co_varnames)
        named = code.co_argcount + code.co_kwonlyargcount
        star_args = names[named] if code.co_flags & inspect.CO_VARARGS else None
        star_kwargs = names[named + (star_args is not None)] if code.co_flags & inspect.CO_VARKEYWORDS else None
        ordered = names[:code.co_argcount] + ([star_args] if star_args else []) \
            + names[code.co_argcount:named] + ([star_kwargs] if star_kwargs else [])
        return tuple(ordered), star_args or star_kwargs, func.__annotations__.get("return", inspect.Signature.empty)
    signature = inspect.signature(func)
    variadic = next((p.name for p in signature.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)), None)
    return tuple(signature.parameters), variadic, signature.return_annotation


def _promised_return(func: Callable[..., Any], annotation: Any) -> str | None:
    """The return annotation, written out, when it rules out ``None`` (``pa.Table``); else None.

    A function annotated ``-> pa.Table`` that returns ``None`` has a bug, and storing ``null``
    would hand that bug to every downstream asset: the run fails the asset instead. No
    annotation, ``None``, ``Optional[...]``, ``... | None``, ``Any`` and ``object`` allow None.
    """
    if annotation is inspect.Signature.empty:
        return None
    written = annotation if isinstance(annotation, str) else getattr(annotation, "__qualname__", str(annotation))
    if isinstance(annotation, type):  # a plain class (``dict``, ``pa.Table``): nothing to resolve
        return None if annotation in (type(None), Any, object) else written
    try:
        annotation = typing.get_type_hints(func).get("return", annotation)
    except Exception:  # noqa: BLE001 - names only imported for type checking: judge the text
        pass
    if isinstance(annotation, str):
        text = annotation.replace(" ", "")
        parts = set(text.replace("[", "|").replace("]", "|").replace(",", "|").split("|"))
        allows_none = bool(parts & {"None", "NoneType", "Any", "typing.Any", "object"}) or "Optional" in text
        return None if allows_none else written
    if annotation in (None, type(None), Any, object) or type(None) in typing.get_args(annotation):
        return None
    return written


def _check_run_options(where: str, options: Mapping[str, Any]) -> None:
    retries = options["retries"]
    # bool is an int subclass: retries=True would silently mean one retry
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool) or retries < 0):
        raise AssetsError(f"asset {where}: retries must be a whole number >= 0, got {retries!r}")
    timeout = options["timeout_seconds"]
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0):
        raise AssetsError(f"asset {where}: timeout_seconds must be a positive number, got {timeout!r}")
    delay = options["retry_delay_seconds"]
    delays = delay if isinstance(delay, (list, tuple)) else [] if delay is None else [delay]
    if not all(isinstance(d, (int, float)) and d >= 0 for d in delays):
        raise AssetsError(f"asset {where}: retry_delay_seconds must be a number >= 0 or a list of them, got {delay!r}")


def _to_key(value: CoercibleToKey | AssetDefinition) -> AssetKey:
    return value.key if isinstance(value, AssetDefinition) else AssetKey.parse(value)
