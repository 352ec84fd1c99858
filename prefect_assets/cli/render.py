"""Pictures of the asset graph for the CLI: a text tree, Mermaid and Graphviz dot.

Kept beside the CLI, out of the graph module, so the graph stays plain data.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.tree import Tree

from prefect_assets.assets.graph import AssetGraph
from prefect_assets.assets.keys import AssetKey


def text_tree(graph: AssetGraph, keys: Iterable[AssetKey]) -> Tree:
    """Roots of the selection with their downstream assets nested below them.

    An asset with several upstream assets appears under each; after its first appearance it
    is marked ``(above)`` instead of repeating its subtree.
    """
    selected = set(keys)
    tree = Tree(f"{len(selected)} assets", guide_style="dim")
    shown: set[AssetKey] = set()

    def add(parent: Tree, key: AssetKey) -> None:
        definition = graph.nodes[key].definition
        if key in shown:
            parent.add(f"{key} [dim](above)[/dim]")
            return
        shown.add(key)
        branch = parent.add(f"[bold]{key}[/bold] [dim]{definition.group}[/dim]")
        for child in sorted(graph.downstream_of(key) & selected):
            add(branch, child)

    for key in graph.toposort(selected):
        if not graph.upstream_of(key) & selected:
            add(tree, key)
    return tree


def mermaid(graph: AssetGraph, keys: Iterable[AssetKey]) -> str:
    """A Mermaid flowchart (paste into Markdown or mermaid.live), one subgraph per group."""
    selected = graph.toposort(keys)
    lines = ["graph LR"]
    groups: dict[str, list[AssetKey]] = {}
    for key in selected:
        groups.setdefault(graph.nodes[key].definition.group, []).append(key)
    for group, members in groups.items():
        lines.append(f"  subgraph {_node_id(group)}[{group}]")
        lines.extend(f'    {_node_id(k.python_name)}["{k}"]' for k in members)
        lines.append("  end")
    lines.extend(_edges(graph, selected, "  {up} --> {down}"))
    return "\n".join(lines)


def dot(graph: AssetGraph, keys: Iterable[AssetKey]) -> str:
    """A Graphviz digraph (``dot -Tsvg``)."""
    selected = graph.toposort(keys)
    lines = ["digraph assets {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    lines.extend(f'  {_node_id(k.python_name)} [label="{k}"];' for k in selected)
    lines.extend(_edges(graph, selected, "  {up} -> {down};"))
    lines.append("}")
    return "\n".join(lines)


def _edges(graph: AssetGraph, selected: list[AssetKey], template: str) -> list[str]:
    chosen = set(selected)
    return [
        template.format(up=_node_id(up.python_name), down=_node_id(key.python_name))
        for key in selected
        for up in sorted(graph.upstream_of(key) & chosen)
    ]


def _node_id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)
