"""Asset keys: the one identity of an asset.

An :class:`AssetKey` is a frozen tuple of path parts. Equality, hashing, ordering, the
written form (``reports/daily``), the Python parameter form (``reports__daily``) and the
storage path all derive from that tuple.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from prefect_assets.errors import AssetsError

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


@dataclass(frozen=True, order=True)
class AssetKey:
    """The path that names an asset, e.g. ``AssetKey(("reports", "daily"))``.

    >>> AssetKey.parse("reports/daily").parts
    ('reports', 'daily')
    >>> str(AssetKey(("reports", "daily")))
    'reports/daily'
    """

    parts: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.parts:
            raise AssetsError("an asset key needs at least one part")
        for part in self.parts:
            # fullmatch: `$` would also match before a trailing newline, letting "a\n" through
            if not isinstance(part, str) or not _PART.fullmatch(part):
                raise AssetsError(
                    f"asset key part {part!r} is not valid: use letters, digits, '_' and '-', "
                    "starting with a letter or '_'"
                )

    # Written out (dataclass would compare and hash a one-tuple of the fields): graphs of
    # 10,000 assets hash keys hundreds of thousands of times. Same results as the generated ones.
    def __hash__(self) -> int:
        return hash(self.parts)

    def __eq__(self, other: object) -> bool:
        return self.parts == other.parts if other.__class__ is self.__class__ else NotImplemented

    @classmethod
    def parse(cls, value: CoercibleToKey) -> AssetKey:
        """Make a key from ``"a/b"``, ``("a", "b")`` or an existing key."""
        if isinstance(value, AssetKey):
            return value
        if isinstance(value, str):
            return cls(tuple(value.strip("/").split("/")))
        try:
            parts = tuple(value)
        except TypeError:  # e.g. deps=[3]: a user mistake, not a bug
            raise AssetsError(
                f"asset key {value!r} is not valid: write it as 'a/b' or a sequence of parts like ('a', 'b')"
            ) from None
        return cls(parts)

    @property
    def name(self) -> str:
        """The last part, which is also the default parameter name downstream."""
        return self.parts[-1]

    @property
    def python_name(self) -> str:
        """The full key as a Python identifier: ``reports__daily``."""
        return "__".join(self.parts)

    def __str__(self) -> str:
        return "/".join(self.parts)

    def __repr__(self) -> str:
        return f"AssetKey({str(self)!r})"


CoercibleToKey = Union[AssetKey, str, Sequence[str]]

#: Characters a partition key may not hold: path separators would move its file into another
#: asset's folder, and fsspec reads ``*``, ``?`` and ``[`` as a glob, so a delete or read that
#: named such a path could reach other partitions' files.
_PARTITION_FORBIDDEN = frozenset("/\\*?[]")


def check_partition_key(value: object) -> str:
    """Return ``value`` if it can name a partition's file; raise :class:`AssetsError` otherwise.

    A partition key becomes one path segment (``<key>/<partition>.<ext>``), so it must not be
    empty, contain ``..``, ``/``, ``\\``, glob characters, control characters (NUL included) or
    lone surrogates (undecodable bytes from the command line, which no UTF-8 name can hold), or
    start or end with a space.

    >>> check_partition_key("2026-01-05")
    '2026-01-05'
    >>> check_partition_key("../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    prefect_assets.errors.AssetsError: partition key '../etc' cannot be stored: ...
    """
    problem = None
    if not isinstance(value, str) or not value:
        problem = "it is empty" if value == "" else f"it is a {type(value).__name__}, not text"
    elif ".." in value or value == ".":
        problem = "it is '.'" if value == "." else "it contains '..'"
    elif any(c in _PARTITION_FORBIDDEN for c in value):
        problem = "it contains " + " or ".join(repr(c) for c in sorted(set(value) & _PARTITION_FORBIDDEN))
    elif any(unicodedata.category(c) == "Cc" for c in value):
        problem = "it contains a control character"
    elif any(unicodedata.category(c) == "Cs" for c in value):
        problem = "it contains a lone surrogate (bytes that were not UTF-8)"
    elif value != value.strip():
        problem = "it starts or ends with a space"
    if problem:
        raise AssetsError(
            f"partition key {value!r} cannot be stored: {problem}; use letters, digits and '-', '_', ':', '.' "
            "(e.g. 2026-01-05)"
        )
    return value
