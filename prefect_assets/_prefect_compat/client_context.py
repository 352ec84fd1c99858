"""An entered Prefect ``SyncClientContext`` made current again, in another context.

A ``ContextModel`` entered once cannot be entered again to make it current (entering an
entered context only counts), so a client context opened once per worker and run is made
current around each of the run's tasks by setting ``SyncClientContext.__var__``, the
context variable Prefect's ``__enter__`` sets, and resetting it after.

Without :data:`AVAILABLE` :func:`current` is not offered: callers leave each task to build its
own clients, as Prefect does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prefect.context import SyncClientContext

from prefect_assets._prefect_compat import available


def probe() -> bool:
    """``SyncClientContext.__var__`` is the context variable ``get()`` reads."""
    return isinstance(SyncClientContext.__var__, ContextVar) and "__var__" in SyncClientContext.get.__func__.__code__.co_names


AVAILABLE = available(probe)


@contextmanager
def current(client_context: SyncClientContext) -> Iterator[None]:
    """Inside the block, ``client_context`` (entered elsewhere) is the current one, and
    ``get_client(sync_client=True)`` returns its client.

    Raises:
        RuntimeError: not :data:`AVAILABLE`.
    """
    if not AVAILABLE:
        raise RuntimeError("SyncClientContext cannot be made current here; check AVAILABLE first")
    token = SyncClientContext.__var__.set(client_context)
    try:
        yield
    finally:
        SyncClientContext.__var__.reset(token)
