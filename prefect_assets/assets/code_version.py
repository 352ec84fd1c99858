"""The default code version of an asset: a hash of its normalized source.

The function's AST without decorators or docstring is hashed, so reformatting, comments and
docstring edits do not make an asset stale, while any change to what it computes does. Kept
apart from :mod:`~prefect_assets.assets.versions` (staleness over the graph) because the
decorator needs it while the graph does not exist yet.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable


def source_code_version(fn: Callable) -> str:
    """Return a 16-hex-digit hash of ``fn``'s normalized source.

    Falls back to the compiled bytecode and constants when the source is not available
    (functions made with ``exec`` or in an interactive session).
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        code = fn.__code__
        return _digest(repr((code.co_code, code.co_consts, code.co_names)))
    node = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    node.decorator_list = []
    if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant) \
            and isinstance(node.body[0].value.value, str):
        node.body = node.body[1:]
    return _digest(ast.dump(node, annotate_fields=False, include_attributes=False))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
