"""The layered asset graph the overhead and Dagster benchmarks run (standard library only: the
Dagster benchmark imports it in a venv that has neither Prefect nor prefect-assets)."""

from __future__ import annotations


def layered_graph(n: int) -> list[list[str]]:
    """Node names ``n0..n{n-1}`` in layers of ~sqrt(n)."""
    width = max(1, round(n ** 0.5))
    names = [f"n{i}" for i in range(n)]
    return [names[i:i + width] for i in range(0, n, width)]


def upstream_pairs(layers: list[list[str]]) -> dict[str, list[str]]:
    """``{node: upstream nodes}``: every node after the first layer reads two nodes of the layer above."""
    ups: dict[str, list[str]] = {}
    for depth, layer in enumerate(layers):
        above = layers[depth - 1] if depth else []
        for i, name in enumerate(layer):
            ups[name] = sorted({above[i % len(above)], above[(i + 1) % len(above)]}) if above else []
    return ups


def combine(*values: int) -> int:
    return sum(values) + 1


def root() -> int:
    return combine()


def one(a: int) -> int:
    return combine(a)


def two(a: int, b: int) -> int:
    return combine(a, b)


#: The asset function for a node with 0, 1 or 2 upstream assets (parameters ``a`` and ``b``).
BY_ARITY = [root, one, two]
