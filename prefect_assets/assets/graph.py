"""The asset graph: plain data, no executor.

:class:`AssetGraph` resolves every asset's parameters to upstream keys, indexes edges in both
directions and orders keys with :mod:`graphlib`. The flow layer consumes it; nothing here knows
about Prefect.
"""

from __future__ import annotations

import graphlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prefect_assets.assets.decorator import AssetDefinition
from prefect_assets.assets.keys import AssetKey
from prefect_assets.errors import AssetsError, did_you_mean


@dataclass(frozen=True)
class AssetNode:
    """An asset with its parameters resolved to upstream keys.

    Attributes:
        definition: what the user decorated.
        inputs: ``{parameter: upstream key}`` for the values loaded and passed in.
        deps: upstream keys that order this asset but are not loaded.
    """

    definition: AssetDefinition
    inputs: Mapping[str, AssetKey]
    deps: frozenset[AssetKey]
    #: Every upstream key, loaded or not (``inputs`` and ``deps`` together).
    upstream: frozenset[AssetKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived once: the graph asks for it for every asset, often several times.
        object.__setattr__(self, "upstream", frozenset(self.inputs.values()) | self.deps)

    @property
    def key(self) -> AssetKey:
        return self.definition.key


class AssetGraph:
    """Assets keyed by :class:`AssetKey`, with edges in both directions.

    Raises:
        AssetsError: two definitions share a key, a parameter or dep matches no asset (or
            several), or the dependencies form a cycle (the message shows its path).

    Example:
        >>> from prefect_assets.assets.decorator import asset
        >>> @asset
        ... def a(): return 1
        >>> @asset
        ... def b(a): return a + 1
        >>> [str(k) for k in AssetGraph([a, b]).toposort()]
        ['a', 'b']
    """

    def __init__(self, definitions: Iterable[AssetDefinition]):
        by_key: dict[AssetKey, AssetDefinition] = {}
        for definition in definitions:
            seen = by_key.get(definition.key)
            if seen is not None and seen is not definition:
                raise AssetsError(
                    f"duplicate asset key '{definition.key}': defined at {seen.source} and at "
                    f"{definition.source}; rename one with name= or key_prefix="
                )
            by_key[definition.key] = definition
        self._resolver = _KeyResolver(by_key)
        self.nodes: dict[AssetKey, AssetNode] = {
            key: self._resolve_node(definition) for key, definition in by_key.items()
        }
        self._raise_collected_errors()
        self._downstream: dict[AssetKey, set[AssetKey]] = defaultdict(set)
        for node in self.nodes.values():
            for up in node.upstream:
                self._downstream[up].add(node.key)
        self._order = self._toposort_all()

    def __contains__(self, key: object) -> bool:
        return key in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def keys(self) -> list[AssetKey]:
        """All keys in dependency order (upstream first, ties by key)."""
        return list(self._order)

    def upstream_of(self, key: AssetKey) -> frozenset[AssetKey]:
        return self.nodes[key].upstream

    def downstream_of(self, key: AssetKey) -> frozenset[AssetKey]:
        return frozenset(self._downstream.get(key, ()))

    def toposort(self, keys: Iterable[AssetKey] | None = None) -> list[AssetKey]:
        """The given keys (default: all) in dependency order."""
        wanted = set(self.nodes) if keys is None else set(keys)
        return [k for k in self._order if k in wanted]

    def find(self, name: str) -> AssetKey | None:
        """The key written ``name`` (``a/b``, ``a__b`` or a unique last part), else ``None``."""
        return self._resolver.lookup(name)

    def _resolve_node(self, definition: AssetDefinition) -> AssetNode:
        inputs = {}
        for param in definition.input_params:
            explicit = definition.explicit_ins.get(param)
            key = self._resolver.resolve(definition, param, explicit)
            if key is not None:
                inputs[param] = key
        deps = {self._resolver.resolve(definition, None, dep) for dep in definition.deps}
        return AssetNode(definition, inputs, frozenset(k for k in deps if k is not None))

    def _raise_collected_errors(self) -> None:
        errors = self._resolver.errors
        if errors:
            more = f"; (+{len(errors) - 3} more)" if len(errors) > 3 else ""
            raise AssetsError("; ".join(errors[:3]) + more)

    def _toposort_all(self) -> list[AssetKey]:
        # Sorted by the keys' parts, which orders them as AssetKey does, without a Python-level
        # comparison per pair: the same order, a third of the time on 10,000 assets.
        sorter = graphlib.TopologicalSorter(
            {k: sorted(self.nodes[k].upstream, key=_parts) for k in sorted(self.nodes, key=_parts)}
        )
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            # graphlib lists the cycle upstream first (each node feeds the next), the same
            # direction as the arrows of `graph`: a -> b means b reads a.
            path = " -> ".join(str(k) for k in exc.args[1])
            raise AssetsError(f"cycle in the asset graph: {path}; remove one of these dependencies") from None
        order: list[AssetKey] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=_parts)
            order.extend(ready)
            sorter.done(*ready)
        return order


def _parts(key: AssetKey) -> tuple[str, ...]:
    return key.parts


class _KeyResolver:
    """Finds upstream keys for parameter names and collects every miss for one error."""

    def __init__(self, by_key: Mapping[AssetKey, AssetDefinition]):
        self.by_key = by_key
        self.by_python_name = {k.python_name: k for k in by_key}
        self.by_name: dict[str, list[AssetKey]] = defaultdict(list)
        for key in by_key:
            self.by_name[key.name].append(key)
        self.errors: list[str] = []

    def lookup(self, name: str) -> AssetKey | None:
        if "/" in name:
            key = AssetKey.parse(name)
            return key if key in self.by_key else None
        if name in self.by_python_name:
            return self.by_python_name[name]
        matches = self.by_name.get(name, [])
        return matches[0] if len(matches) == 1 else None

    def resolve(self, definition: AssetDefinition, param: str | None, key: AssetKey | None) -> AssetKey | None:
        if key is not None and key in self.by_key:
            return key
        if param is not None and key is None:
            found = self.lookup(param)
            if found is not None:
                return found
        where = f"asset '{definition.key}' ({definition.source})"
        if key is not None:
            what = f"ins['{param}']" if param else "deps"
            self.errors.append(
                f"{where}: {what} names unknown asset '{key}'{did_you_mean(str(key), map(str, self.by_key))}"
            )
            return None
        assert param is not None
        candidates = self.by_name.get(param, [])
        if len(candidates) > 1:
            options = ", ".join(f"'{k.python_name}'" for k in sorted(candidates))
            self.errors.append(
                f"{where}: parameter '{param}' matches several assets; name it {options} or map it with ins="
            )
        else:
            names = list(self.by_name) + list(self.by_python_name)
            self.errors.append(
                f"{where}: parameter '{param}' matches no asset{did_you_mean(param, names)}; "
                "rename it to an asset name or map it with ins={...}"
            )
        return None
