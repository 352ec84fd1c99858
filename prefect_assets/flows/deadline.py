"""A deadline for a block of code, with the standard library only: the asset timeout's scope.

:func:`deadline` raises an exception in the block once it has run ``seconds``, by the means
that bite where the block runs:

- **On a process's main thread** (process pool, Ray), with no other ``SIGALRM`` handler
  installed: a ``SIGALRM`` timer (``signal.setitimer``). Its handler raises in the main
  thread, interrupting even ``sleep`` and blocking I/O.
- **On any other thread** (the thread runner): a watcher thread injects the exception into the
  block's thread at the deadline (CPython's ``PyThreadState_SetAsyncExc``). It stops Python
  code, but a blocking call (``sleep``, I/O, C code) finishes first: Python cannot interrupt
  a thread.

Inside the block the exception is a ``BaseException`` of this scope's own, so code that
catches ``Exception`` (the asset's, an IO manager's) does not swallow it; leaving the block it
becomes the caller's ``exc_type``. This is what Prefect's timeout scope does
(``prefect.utilities.timeout``, built on its internal cancel scopes), without reaching into
Prefect.

Example:
    >>> import time
    >>> try:
    ...     with deadline(0.05, TimeoutError):
    ...         time.sleep(1)
    ... except TimeoutError:
    ...     print("stopped")
    stopped
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Expired(BaseException):
    """Raised inside a block whose deadline passed; each scope raises a subclass of its own."""


@contextmanager
def deadline(seconds: float, exc_type: type[BaseException] = TimeoutError) -> Iterator[None]:
    """Raise ``exc_type`` out of the block if it runs longer than ``seconds`` (see the module).

    Raises:
        exc_type: the block was stopped at its deadline.
    """
    expired = type("Expired", (_Expired,), {})  # this scope's own: a nested scope's passes through
    on_main_thread = threading.current_thread() is threading.main_thread()
    alarm_free = hasattr(signal, "setitimer") and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    scope = _alarm if on_main_thread and alarm_free else _injected
    try:
        with scope(seconds, expired):
            yield
    except expired:
        raise exc_type(f"the block timed out after {seconds:g} s") from None


@contextmanager
def _alarm(seconds: float, expired: type[_Expired]) -> Iterator[None]:
    def raise_expired(signum: int, frame: object) -> None:
        raise expired

    previous = signal.signal(signal.SIGALRM, raise_expired)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, *previous_timer)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _injected(seconds: float, expired: type[_Expired]) -> Iterator[None]:
    target = threading.current_thread()
    left = threading.Event()
    lock = threading.Lock()  # the block's exit and the injection never overlap

    def watch() -> None:
        if left.wait(seconds):
            return
        with lock:
            if not left.is_set():
                _raise_in(target, expired)

    watcher = threading.Thread(target=watch, name=f"deadline-watcher {seconds:g}s", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        # The exception may arrive while this runs (the block ended at its deadline): it still
        # leaves as the deadline, through deadline()'s except.
        try:
            with lock:
                left.set()
        finally:
            left.set()
            watcher.join()


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Raise ``exc_type`` in ``thread`` at its next Python instruction."""
    if thread.ident is None:
        return
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))
    if done > 1:  # more than one thread: undo (cannot happen with a live thread's ident)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), None)
