"""A run's Prefect settings serialized once for all the tasks it sends to workers.

Prefect sends every task it runs in another process the run's context, settings included:
``serialize_context()`` calls ``SettingsContext.get().serialize()`` for each task, and the
worker's ``hydrated_context`` builds ``SettingsContext(**serialized)``, which builds
``Settings`` from the dict; pydantic takes a ``Settings`` given there as it is. Inside
:func:`serialized_once` the current settings context is one whose ``serialize()`` runs once
and then hands out the same dict, its ``settings`` entry replaced by what the caller makes of
it (something that unpickles to a built ``Settings`` in the worker).

Without :data:`AVAILABLE` the block changes nothing: Prefect serializes the settings for every
task and every worker builds them again for every task, as it does by default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.context import SettingsContext, hydrated_context, serialize_context
from prefect.settings import Settings
from pydantic import PrivateAttr

from prefect_assets._prefect_compat import available


def probe() -> bool:
    """``serialize_context`` calls ``SettingsContext.get().serialize()``, ``serialize`` takes
    ``include_secrets``, and hydration builds a ``SettingsContext`` whose ``settings`` field
    takes a built ``Settings`` as it is."""
    return (
        {"SettingsContext", "get", "serialize"} <= set(serialize_context.__code__.co_names)
        and list(inspect.signature(SettingsContext.serialize).parameters) == ["self", "include_secrets"]
        and "SettingsContext" in inspect.unwrap(hydrated_context).__code__.co_names
        and SettingsContext.model_fields["settings"].annotation is Settings
        and SettingsContext.model_config.get("revalidate_instances") in (None, "never")
    )


AVAILABLE = available(probe)

#: What replaces the serialized ``settings`` dict in what goes to workers.
SettingsWrapper = Callable[[dict[str, Any]], dict[str, Any]]


class _SettingsSerializedOnce(SettingsContext):
    """The current Prefect settings, serialized on first use and then reused, for one run."""

    _serialized: dict[bool, dict[str, Any]] = PrivateAttr(default_factory=dict)
    _wrap: SettingsWrapper | None = PrivateAttr(default=None)

    def serialize(self, include_secrets: bool = True) -> dict[str, Any]:
        if include_secrets not in self._serialized:
            serialized = super().serialize(include_secrets=include_secrets)
            if include_secrets and "settings" in serialized and self._wrap is not None:
                # Only what goes to workers; a redacted copy is for display, never rebuilt.
                serialized["settings"] = self._wrap(serialized["settings"])
            self._serialized[include_secrets] = serialized
        return self._serialized[include_secrets]


@contextmanager
def serialized_once(wrap: SettingsWrapper) -> Iterator[None]:
    """Inside the block, Prefect serializes the current settings once, and workers receive
    ``wrap(serialized settings)`` in their place (see the module docstring)."""
    if not AVAILABLE:
        yield
        return
    current = SettingsContext.get()  # never None once Prefect is imported: the global context
    context = _SettingsSerializedOnce(profile=current.profile, settings=current.settings)
    context._wrap = wrap
    with context:
        yield
