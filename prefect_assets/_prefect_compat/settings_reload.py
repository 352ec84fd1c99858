"""Prefect's settings and logging read again from the environment, in a forked worker.

Prefect reads its settings and configures logging from the environment when it is imported.
A worker forked from the forkserver inherits what the forkserver read, possibly during an
earlier run; when a ``PREFECT_`` variable differs, :func:`reload_from_environment` has Prefect
read them again, as a spawned worker would at import (``prefect.context
.refresh_global_settings_context`` and ``prefect.logging.configuration.setup_logging``).

Without :data:`AVAILABLE` nothing can be read again, so the process runner must not fork its
workers: it keeps Prefect's spawned ones (see :mod:`.process_pool`).
"""

from __future__ import annotations

import prefect.context
import prefect.logging.configuration

from prefect_assets._prefect_compat import available


def probe() -> bool:
    """Both functions are there."""
    return callable(getattr(prefect.context, "refresh_global_settings_context", None)) and callable(
        getattr(prefect.logging.configuration, "setup_logging", None)
    )


AVAILABLE = available(probe)


def reload_from_environment() -> None:
    """Prefect's global settings and logging configuration, read again from ``os.environ``.

    Raises:
        RuntimeError: not :data:`AVAILABLE` (a forked worker would run with stale settings).
    """
    if not AVAILABLE:
        raise RuntimeError("Prefect's settings cannot be read again here: do not fork workers")
    prefect.context.refresh_global_settings_context()
    prefect.logging.configuration.setup_logging()
