"""The one exception type for user mistakes.

Anything the user can fix by editing their project, config or command line raises
:class:`AssetsError` with a single line that names the culprit and the fix. The CLI prints
it as that one line and exits with code 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AssetsError(Exception):
    """A user error: one line naming what is wrong and how to fix it."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest candidates, or ``""``.

    >>> did_you_mean("ordrs", ["orders", "customers"])
    " (did you mean 'orders'?)"
    """
    # dict.fromkeys: the same name offered twice (a key and its last part) is suggested once
    matches = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"
