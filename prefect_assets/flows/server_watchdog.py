"""The watchdog process that stops an embedded Prefect server when its parent dies.

Run by :mod:`prefect_assets.flows.embedded_server` as ``python -I -S <this file> FD``, never
imported by the package: it uses the standard library only, so it starts in a fraction of
the time a Prefect import takes and shares nothing with the parent but one pipe.

**Protocol.** The parent holds the only write end of a pipe whose read end is ``FD`` here.
It writes one line per message:

- ``guard PID``: a server process to stop if the parent dies;
- ``release``: the parent is exiting normally and stops its servers itself, so exit quietly.

End of file without ``release`` means the parent is gone without its exit handlers (SIGKILL,
an unhandled SIGTERM, an out-of-memory kill): the kernel closed its end of the pipe. Then every
guarded server gets SIGTERM (uvicorn shuts down cleanly, Prefect's services stop, the database
is left consistent) and, if it is still there after :data:`GRACE_SECONDS`, SIGKILL: what
Prefect's own ``SubprocessASGIServer.stop`` does at a normal exit.

**The right process.** On Linux each guarded PID is opened as a pidfd as soon as it arrives,
while the parent still owns (and has not reaped) the server, and signals go through it: a PID
reused by an unrelated process later is never signalled. Elsewhere the PID is signalled
directly.

**Signals for the group.** Ctrl-C and a closed terminal reach the whole process group; the
watchdog ignores SIGINT and SIGHUP so that it keeps watching while the parent handles them
(and exits through ``release``, or dies and leaves end of file).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

#: How long a server gets between SIGTERM and SIGKILL; Prefect's own stop() waits as long.
GRACE_SECONDS = 5.0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    guarded: dict[int, int | None] = {}  # pid -> pidfd (None where there are no pidfds)
    pending = b""
    with os.fdopen(int(argv[1]), "rb", buffering=0) as pipe:
        while chunk := pipe.read(256):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                word, _, value = line.decode("ascii", "replace").partition(" ")
                if word == "release":
                    return 0
                if word == "guard" and value.isdigit() and int(value) > 0:
                    guarded[int(value)] = _open_pidfd(int(value))
    for pid, pidfd in guarded.items():
        _stop(pid, pidfd)
    return 0


def _open_pidfd(pid: int) -> int | None:
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:  # gone already, or a kernel without pidfds: signal by PID
        return None


def _signal(pid: int, pidfd: int | None, signum: int) -> bool:
    """Send ``signum``; False when the process no longer exists."""
    try:
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def _exited(pid: int, pidfd: int | None, timeout: float) -> bool:
    if pidfd is not None:  # readable once the process has exited
        return bool(select.select([pidfd], [], [], timeout)[0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _signal(pid, None, 0):
            return True
        time.sleep(0.05)
    return False


def _stop(pid: int, pidfd: int | None) -> None:
    if _signal(pid, pidfd, signal.SIGTERM) and not _exited(pid, pidfd, GRACE_SECONDS):
        _signal(pid, pidfd, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
