"""``prefect-assets`` as a user runs it, able to die at the worst instant: ``python -m tests.crash_child ARGS``.

With ``CRASH_AT_PUBLISH=<suffix>`` in the environment, the process kills itself with SIGKILL the
moment a data file whose path ends with ``<suffix>`` has been published (renamed into place, or
its upload completed), before its record is written: the instant at which a store without a
write-ahead record would leave new data under the old record. Nothing else is changed.
"""

from __future__ import annotations

import os
import signal
import sys


def _die_after_publishing(suffix: str) -> None:
    from prefect_assets.io_managers import storage

    for writer in (storage._LocalWriter, storage._ObjectStoreWriter, storage._RenameWriter):
        publish = writer.publish

        def publish_then_die(self, _publish=publish):
            identity = _publish(self)
            if self.path.endswith(suffix):
                os.kill(os.getpid(), signal.SIGKILL)
            return identity

        writer.publish = publish_then_die


if __name__ == "__main__":
    if os.environ.get("CRASH_AT_PUBLISH"):
        _die_after_publishing(os.environ["CRASH_AT_PUBLISH"])
    from prefect_assets.cli import main

    sys.argv = ["prefect-assets", *sys.argv[1:]]
    main()
