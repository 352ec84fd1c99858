"""The default code version of an asset: a hash of its normalized source, cached on disk.

The function's AST without decorators or docstring is hashed, so reformatting, comments and
docstring edits do not make an asset stale, while any change to what it computes does. Kept
apart from :mod:`~prefect_assets.assets.versions` (staleness over the graph) because the
decorator needs it while the graph does not exist yet.

Hashing is the slow part (tokenizing the function's block, parsing and dumping its AST, for
every asset of a large project), and ``list`` and ``graph`` never need a version. So
``@asset`` only *pins* the source (:func:`pin_source`: the module's lines as Python's
``linecache`` holds them when the module is imported, which is what :func:`inspect.getsource`
reads, and where the function starts in them) and the version is computed on first use, from
the pinned text, exactly as if it were computed at decoration.

The computed versions are kept in a cache on disk, keyed by what determines them:

- the SHA-256 of the whole module text that was pinned (the content, not its path or mtime:
  an edit that changes any byte changes the key, and copies of a project share entries);
- where the function's block starts in that text and the function's qualified name (the
  block, and so its end, follows from its start and the text);
- the Python version and :data:`ALGORITHM` (part of the folder name), since the AST dump
  differs between Python versions.

The version is a pure function of that key, so an entry can never be stale, only missing: an
edited module is a new key, computed again and stored beside the old one. The cache lives in
``$PREFECT_ASSETS_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/prefect-assets`` (Windows:
``%LOCALAPPDATA%``; default ``~/.cache/prefect-assets``), not in the project: it is per machine, shared by every checkout,
needs no ``.gitignore`` and no write access to the project. One small JSON file per module
text, ``code-versions/<python>-<algorithm>/<hash[:2]>/<hash>.json``, mapping
``qualname:line`` to the version. Nothing prunes it; deleting it at any time is safe. It is
written at process exit (or by :func:`save_cache`), merged with what another process wrote
meanwhile; a cache that cannot be read or written is skipped: it only ever costs time.

Example:
    >>> def total(numbers: list) -> int:
    ...     return sum(numbers)
    >>> len(source_code_version(total))
    16
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import hashlib
import inspect
import json
import linecache
import os
import re
import sys
import tempfile
import textwrap
import threading
import tokenize
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

#: Bump when the normalization below changes what a version is: it names the cache folder, so
#: versions computed the old way are never read again.
ALGORITHM = "v1"

_VERSION = re.compile(r"[0-9a-f]{16}")


def source_code_version(fn: Callable) -> str:
    """Return a 16-hex-digit hash of ``fn``'s normalized source (through the cache).

    Falls back to the compiled bytecode and constants when the source is not available
    (functions made with ``exec`` or in an interactive session).
    """
    pinned = pin_source(fn)
    return pinned.code_version(fn) if pinned is not None else bytecode_version(fn)


def pin_source(fn: Callable) -> PinnedSource | None:
    """Capture where ``fn``'s source is, cheaply, without hashing it; None if it has none.

    This is the part of :func:`inspect.getsource` that finds the function (following
    ``__wrapped__``): the module's lines as ``linecache`` holds them now, and the line its
    block starts at. Pinning when the function is decorated keeps the version true to the
    code that was imported, however late it is computed or the file is edited meanwhile.
    """
    target = inspect.unwrap(fn)
    code = getattr(target, "__code__", None)
    found = _find_plain_function(target, code) if code is not None else None
    if found is None:
        try:
            found = inspect.findsource(target)
        except (OSError, TypeError):
            return None
    lines, start = found
    return PinnedSource(lines, start, getattr(fn, "__qualname__", "?"), _text_digest(code.co_filename, lines))


#: The lines :func:`inspect.findsource` accepts as the start of a function's block.
_BLOCK_START = re.compile(r"^(\s*def\s)|(\s*async\s+def\s)|(.*(?<!\w)lambda(:|\s))|^(\s*@)")


def _find_plain_function(fn: Callable, code: types.CodeType) -> tuple[list[str], int] | None:
    """What :func:`inspect.findsource` returns for a function in a ``.py`` file, found
    with one ``stat`` instead of three; None for anything less plain (then ask ``inspect``).

    The same steps: check linecache's copy of the file is current, take its lines (through
    the module's loader when the file is not on disk), and start at the code's first line when
    that line opens a function or its decorators, as it always does for a ``def``.
    """
    filename = code.co_filename
    if type(fn) is not types.FunctionType or not filename.endswith(".py"):
        return None
    linecache.checkcache(filename)
    module = sys.modules.get(fn.__module__)
    lines = linecache.getlines(filename, module.__dict__ if module is not None else None)
    start = code.co_firstlineno - 1
    if not lines or not 0 <= start < len(lines) or not _BLOCK_START.match(lines[start]):
        return None
    return lines, start


def bytecode_version(fn: Callable) -> str:
    """The version of a function without source: its bytecode, constants and names."""
    code = fn.__code__
    return _digest(repr((code.co_code, code.co_consts, code.co_names)))


@dataclass(frozen=True)
class PinnedSource:
    """A function's place in its module's text, pinned by :func:`pin_source`.

    Attributes:
        lines: the module's lines (shared by every function of the module: one list).
        start: index of the line the function's block starts at (its first decorator).
        qualname: the function's qualified name, part of the cache key.
        digest: SHA-256 of the module's text, part of the cache key.
    """

    lines: list[str] = field(repr=False, compare=False)
    start: int
    qualname: str
    digest: str

    def code_version(self, fn: Callable) -> str:
        """The version of ``fn``, the function pinned: from the cache, else computed and cached.

        A source that does not parse as a function (a lambda, a block that does not dedent)
        gives ``fn``'s :func:`bytecode_version`, not cached: it is cheap, and not a function
        of the text alone.
        """
        entry = f"{self.qualname}:{self.start + 1}"
        cached = _CACHE.get(self.digest, entry)
        if cached is not None:
            return cached
        version = self._compute()
        if version is None:
            return bytecode_version(fn)
        _CACHE.put(self.digest, entry, version)
        return version

    def _compute(self) -> str | None:
        try:
            source = "".join(inspect.getblock(self.lines[self.start:]))
            tree = ast.parse(textwrap.dedent(source))
        except (SyntaxError, tokenize.TokenError):
            return None
        node = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
        if node is None:  # a lambda: no def to normalize
            return None
        node.decorator_list = []
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant) \
                and isinstance(node.body[0].value.value, str):
            node.body = node.body[1:]
        return _digest(ast.dump(node, annotate_fields=False, include_attributes=False))


def save_cache() -> None:
    """Write the versions computed in this process to the disk cache (also done at exit)."""
    _CACHE.save()


def cache_folder() -> Path:
    """The folder the cache reads and writes now (see the module docstring)."""
    env = os.environ
    return _folder(env.get("PREFECT_ASSETS_CACHE_DIR"), env.get("XDG_CACHE_HOME") or env.get("LOCALAPPDATA"))


@lru_cache(maxsize=8)
def _folder(explicit: str | None, user_cache: str | None) -> Path:
    base = Path(explicit) if explicit else Path(user_cache or Path.home() / ".cache") / "prefect-assets"
    return base / "code-versions" / f"{sys.implementation.cache_tag}-{ALGORITHM}"


class _DiskCache:
    """Versions by module digest: read from disk once per digest, new ones written at exit.

    What is known in memory is keyed by the digest alone: a version is the same whichever
    folder it was read from. The folder matters only for reading and writing files.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, str]] = {}
        self._new: dict[tuple[Path, str], dict[str, str]] = {}
        self._exit_hook = False

    def get(self, digest: str, entry: str) -> str | None:
        known = self._known.get(digest)
        if known is None:
            read = _read(_path(cache_folder(), digest))
            with self._lock:
                known = self._known.setdefault(digest, read)
        return known.get(entry)

    def put(self, digest: str, entry: str, version: str) -> None:
        with self._lock:
            self._known.setdefault(digest, {})[entry] = version
            self._new.setdefault((cache_folder(), digest), {})[entry] = version
            if not self._exit_hook:
                self._exit_hook = True
                atexit.register(self.save)

    def save(self) -> None:
        with self._lock:
            new, self._new = self._new, {}
        for (folder, digest), entries in new.items():
            path = _path(folder, digest)
            merged = {**_read(path), **entries}  # what other processes added meanwhile stays
            try:  # read-only or full disk: skipped, the cache only saves time
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            except OSError:
                continue
            try:
                with os.fdopen(fd, "w") as file:
                    json.dump(merged, file, sort_keys=True)
                os.replace(tmp, path)  # readers see the old file or the new one, never half of one
            except OSError:
                with contextlib.suppress(OSError):
                    os.remove(tmp)


def _path(folder: Path, digest: str) -> Path:
    return folder / digest[:2] / f"{digest}.json"


def _read(path: Path) -> dict[str, str]:
    """The entries of one cache file; an unreadable or malformed file (or entry) counts as absent."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str) and _VERSION.fullmatch(v)}


_CACHE = _DiskCache()

#: Per file, the list of lines last hashed and its digest. linecache hands out the same list
#: object until the file changes, so the functions of a module hash its text once; a new list
#: (the file changed, or was read again) is hashed again.
_DIGESTS: dict[str, tuple[list[str], str]] = {}


def _text_digest(filename: str, lines: list[str]) -> str:
    seen = _DIGESTS.get(filename)
    if seen is not None and seen[0] is lines:
        return seen[1]
    digest = hashlib.sha256("".join(lines).encode("utf-8", "surrogatepass")).hexdigest()
    _DIGESTS[filename] = (lines, digest)
    return digest


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
