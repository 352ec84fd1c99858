"""Asset keys: the one identity of an asset.

An :class:`AssetKey` is a frozen tuple of path parts. Equality, hashing, ordering, the
written form (``reports/daily``), the Python parameter form (``reports__daily``) and the
storage path all derive from that tuple.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from prefect_assets.errors import AssetsError

_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


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
            if not isinstance(part, str) or not _PART.match(part):
                raise AssetsError(
                    f"asset key part {part!r} is not valid: use letters, digits, '_' and '-', "
                    "starting with a letter or '_'"
                )

    @classmethod
    def parse(cls, value: CoercibleToKey) -> AssetKey:
        """Make a key from ``"a/b"``, ``("a", "b")`` or an existing key."""
        if isinstance(value, AssetKey):
            return value
        if isinstance(value, str):
            return cls(tuple(value.strip("/").split("/")))
        return cls(tuple(value))

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
