"""Selecting assets: a small grammar over a few graph primitives.

Grammar (terms joined by commas are a union)::

    *              every asset
    key, a/b       one asset (full key, ``a__b``, or a unique last part)
    +key  key+     the asset and everything upstream / downstream of it
    2+key key+1    the same, limited to that many levels
    group:raw      every asset of a group
    tag:team=bi    every asset with that tag (``tag:team`` matches any value)

The ``+`` forms wrap any term, so ``group:clean+`` is the clean group and all it feeds.
Every unknown name in an expression is reported in one error with close matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from prefect_assets.assets.graph import AssetGraph
from prefect_assets.assets.keys import AssetKey
from prefect_assets.errors import AssetsError, did_you_mean

_TERM = re.compile(r"^(?:(?P<up>\d*)\+)?(?P<core>[^+]+?)(?:\+(?P<down>\d*))?$", re.ASCII)


def upstream(graph: AssetGraph, keys: Iterable[AssetKey], depth: int | None = None) -> set[AssetKey]:
    """``keys`` plus their ancestors, up to ``depth`` levels (``None``: all)."""
    return _walk(keys, graph.upstream_of, depth, len(graph))


def downstream(graph: AssetGraph, keys: Iterable[AssetKey], depth: int | None = None) -> set[AssetKey]:
    """``keys`` plus their descendants, up to ``depth`` levels (``None``: all)."""
    return _walk(keys, graph.downstream_of, depth, len(graph))


def by_group(graph: AssetGraph, group: str) -> set[AssetKey]:
    return {k for k, n in graph.nodes.items() if n.definition.group == group}


def by_tag(graph: AssetGraph, name: str, value: str | None = None) -> set[AssetKey]:
    return {
        k for k, n in graph.nodes.items()
        if name in n.definition.tags and (value is None or n.definition.tags[name] == value)
    }


def select(graph: AssetGraph, expression: str | None) -> list[AssetKey]:
    """Evaluate a selection expression; return the keys in dependency order.

    ``None`` (no selection given) selects everything. A *given* selection is never read as
    "everything" by accident: an empty or blank one, or one with an empty term (``a,,b``,
    a trailing comma), is an error, because ``wipe`` and ``materialize`` act on what it
    selects.

    Raises:
        AssetsError: an empty or malformed expression, or unknown keys, groups or tags (all
            of them, with suggestions).
    """
    if expression is None:
        return graph.toposort()
    if not expression.strip():
        raise AssetsError(
            f"selection {expression!r} is empty; name the assets, e.g. 'orders', 'group:raw', or '*' for all"
        )
    terms = [t.strip() for t in expression.split(",")]
    if not all(terms):
        raise AssetsError(
            f"selection {expression!r} has an empty term (two commas in a row, or a comma at either end); "
            "write terms separated by single commas, e.g. 'orders, group:raw'"
        )
    selected: set[AssetKey] = set()
    unknown: list[str] = []
    for term in terms:
        match = _TERM.match(term)
        if not match:
            raise AssetsError(f"selection term {term!r} is not valid; write e.g. 'orders', '+orders', 'orders+2', 'group:raw'")
        core = match["core"].strip()
        keys = _evaluate_core(graph, core, unknown)
        if match["up"] is not None:
            keys = upstream(graph, keys, _depth(match["up"]))
        if match["down"] is not None:
            keys = downstream(graph, keys, _depth(match["down"])) | keys
        selected |= keys
    if unknown:
        raise AssetsError(f"selection {expression!r}: " + "; ".join(unknown))
    return graph.toposort(selected)


def _depth(digits: str) -> int | None:
    """The levels written beside a ``+`` (``None``: all of them).

    More levels than a graph could have assets is the same as all levels; such a depth is
    not converted, because ``int()`` refuses strings of more than 4300 digits.
    """
    if not digits:
        return None
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 9 else None


def _evaluate_core(graph: AssetGraph, core: str, unknown: list[str]) -> set[AssetKey]:
    if core == "*":
        return set(graph.nodes)
    if core.startswith("group:"):
        group = core[len("group:"):]
        found = by_group(graph, group)
        if not found:
            groups = {n.definition.group for n in graph.nodes.values()}
            unknown.append(f"no group {group!r}{did_you_mean(group, groups)}")
        return found
    if core.startswith("tag:"):
        name, _, value = core[len("tag:"):].partition("=")
        found = by_tag(graph, name, value or None)
        if not found:
            tags = {f"{k}={v}" for n in graph.nodes.values() for k, v in n.definition.tags.items()}
            unknown.append(f"no asset tagged {core[4:]!r}{did_you_mean(core[4:], tags)}")
        return found
    key = graph.find(core)
    if key is None:
        same_name = sorted(str(k) for k in graph.nodes if k.name == core)
        if len(same_name) > 1:
            unknown.append(f"{core!r} matches several assets ({', '.join(same_name)}); write the full key")
            return set()
        names = [str(k) for k in graph.nodes] + [k.name for k in graph.nodes]
        unknown.append(f"no asset {core!r}{did_you_mean(core, names)}")
        return set()
    return {key}


def _walk(
    start: Iterable[AssetKey], neighbours: Callable[[AssetKey], Iterable[AssetKey]], depth: int | None, total: int
) -> set[AssetKey]:
    """Breadth-first, a level at a time (a loop: no recursion limit at any depth); stops once
    all ``total`` assets are in."""
    seen = set(start)
    frontier = set(seen)
    level = 0
    while frontier and len(seen) < total and (depth is None or level < depth):
        frontier = {n for key in frontier for n in neighbours(key)} - seen
        seen |= frontier
        level += 1
    return seen
