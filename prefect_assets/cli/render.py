"""Pictures of the asset graph for the CLI: a text tree, Mermaid, Graphviz dot and JSON.

Kept beside the CLI, out of the graph module, so the graph stays plain data. Every function
walks the graph with loops, never recursion, so a 5,000-deep chain draws like a flat one, and
returns plain text: no rich renderables, which cost about a millisecond a line.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable

from prefect_assets.assets.graph import AssetGraph
from prefect_assets.assets.keys import AssetKey

#: Levels the text tree nests before it continues a subtree as a new entry at the top: deeper
#: indentation is unreadable, and a deep chain would otherwise print a triangle of guides
#: (12.5 million guide characters for 5,000 levels).
TREE_DEPTH = 24


def text_tree(graph: AssetGraph, keys: Iterable[AssetKey], max_depth: int = TREE_DEPTH) -> str:
    """Roots of the selection with their downstream assets nested below them.

    An asset with several upstream assets appears under each; after its first appearance it
    is marked ``(above)`` instead of repeating its subtree. An asset at ``max_depth`` levels
    that has downstream assets is marked ``(continued below)``, and appears again at the top
    level, marked ``(continued)``, with its downstream assets nested below it.

    Example:
        >>> from prefect_assets.assets.decorator import asset
        >>> @asset
        ... def a(): return 1
        >>> @asset
        ... def b(a): return a
        >>> print(text_tree(AssetGraph([a, b]), [a.key, b.key]))
        2 assets
        └── a default
            └── b default
    """
    selected = set(keys)
    order = graph.toposort(selected)
    label = {k: f"{k} {graph.nodes[k].definition.group}" for k in order}
    # (level, text) in the order printed; the guides are drawn once all entries are known
    entries: list[tuple[int, str]] = []
    shown: set[AssetKey] = set()
    continued: deque[AssetKey] = deque()

    def walk(top: AssetKey, top_text: str) -> None:
        entries.append((1, top_text))
        stack = [(child, 2) for child in reversed(_children(graph, top, selected))]
        while stack:
            key, level = stack.pop()
            if key in shown:
                entries.append((level, f"{key} (above)"))
                continue
            shown.add(key)
            children = _children(graph, key, selected)
            if children and level >= max_depth:
                entries.append((level, f"{label[key]} (continued below)"))
                continued.append(key)
                continue
            entries.append((level, label[key]))
            stack.extend((child, level + 1) for child in reversed(children))

    for key in order:
        if key not in shown and not graph.upstream_of(key) & selected:
            shown.add(key)
            walk(key, label[key])
    while continued:
        key = continued.popleft()
        walk(key, f"{label[key]} (continued)")
    return "\n".join([f"{len(selected)} assets", *_with_guides(entries)])


def _children(graph: AssetGraph, key: AssetKey, selected: set[AssetKey]) -> list[AssetKey]:
    return sorted(graph.downstream_of(key) & selected)


def _with_guides(entries: list[tuple[int, str]]) -> list[str]:
    """Prefix each (level, text) with tree guides, as ``rich.tree`` draws them."""
    # An entry is the last of its siblings when no entry of its level follows before one of a
    # lower level: found walking backwards.
    last = [False] * len(entries)
    sibling_after: list[bool] = [False]
    for index in range(len(entries) - 1, -1, -1):
        level = entries[index][0]
        if len(sibling_after) <= level:
            sibling_after.extend([False] * (level + 1 - len(sibling_after)))
        last[index] = not sibling_after[level]
        sibling_after[level] = True
        del sibling_after[level + 1:]
    lines = []
    open_levels: list[bool] = [False]  # per level: its current entry has siblings still to come
    for (level, text), is_last in zip(entries, last):
        del open_levels[level:]
        guides = "".join("│   " if more else "    " for more in open_levels[1:])
        lines.append(f"{guides}{'└── ' if is_last else '├── '}{text}")
        open_levels.append(not is_last)
    return lines


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


def graph_json(graph: AssetGraph, keys: Iterable[AssetKey]) -> str:
    """``{"assets": [...]}``, one object a line in dependency order: ``key``, ``group`` and the
    ``upstream`` and ``downstream`` keys within the selection (sorted)."""
    selected = graph.toposort(keys)
    chosen = set(selected)
    return json_assets(
        {
            "key": str(key),
            "group": graph.nodes[key].definition.group,
            "upstream": sorted(str(k) for k in graph.upstream_of(key) & chosen),
            "downstream": sorted(str(k) for k in graph.downstream_of(key) & chosen),
        }
        for key in selected
    )


def json_assets(assets: Iterable[dict]) -> str:
    """``{"assets": [...]}`` with one asset object a line: valid JSON that ``grep`` and
    ``diff`` read too, written by json's C encoder (indenting would use the slow one)."""
    body = ",\n".join(json.dumps(a, ensure_ascii=False) for a in assets)
    return '{"assets": [\n' + body + "\n]}" if body else '{"assets": []}'


def _edges(graph: AssetGraph, selected: list[AssetKey], template: str) -> list[str]:
    chosen = set(selected)
    return [
        template.format(up=_node_id(up.python_name), down=_node_id(key.python_name))
        for key in selected
        for up in sorted(graph.upstream_of(key) & chosen)
    ]


def _node_id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)
