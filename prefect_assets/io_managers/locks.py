"""One writer per asset (partition) at a time, on any backend, surviving a killed holder.

Two runs may materialize the same asset at once. Each stores its value and record while holding
the asset's lock (:mod:`~prefect_assets.io_managers.commit`), so the two stores happen one after
the other and the data and record in storage always come from the same run: the last to store
wins. The lock covers storing only, not computing, so waiting for it is short.

- **Local disk**: ``flock`` on ``<base>/_prefect_assets/locks/<key>.lock``. The kernel releases
  it when its holder dies, however it dies, so a killed run never blocks the next one. Lock
  files stay (empty): deleting one while another process waits on it would let two hold it.
- **Object stores and other backends**: a *lease*, an object created only if absent (S3's
  ``If-None-Match: *``, fsspec's ``mode="create"``) holding its owner and an expiry. A thread
  renews held leases while their store runs. A lease whose owner is gone is broken: at once if
  the owner was a process on this machine that no longer exists, otherwise once it has
  expired (:data:`LEASE_SECONDS` after its last renewal). Breaking deletes it only if it is
  still the object that was judged dead (S3's ``If-Match``), so two waiters cannot both win.
  Whoever breaks a lease learns that a writer died holding it (:attr:`AssetLock.broke_dead`)
  and cleans up after it.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fsspec import AbstractFileSystem

from prefect_assets.io_managers.storage import MULTIPART_PROTOCOLS, is_local, protocols

try:
    import fcntl
except ImportError:  # Windows: leases on local disk too
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from typing_extensions import Self

#: Turns a storage exception into the one to raise: ``(exception, action, path) -> exception``.
StorageError = Callable[[BaseException, str, str], BaseException]

#: How long a writer waits for another writer of the same asset before giving up.
LOCK_TIMEOUT = 600.0

#: How long a lease on a shared store outlives its last renewal (renewed every third of it).
LEASE_SECONDS = 60.0

_POLL_SECONDS = 0.05
_HOST = socket.gethostname()


class LockTimeout(TimeoutError):
    """Another writer held the asset's lock for longer than :data:`LOCK_TIMEOUT`."""


class AssetLock(abc.ABC):
    """The lock of one asset (partition); a context manager that waits for it.

    Attributes:
        path: where the lock lives, in the filesystem's form.
        broke_dead: set on acquiring when the previous holder had died holding it (known on
            stores with leases; on local disk the kernel released it silently).
    """

    def __init__(self, fs: AbstractFileSystem, path: str, what: str, error: StorageError | None = None) -> None:
        self.fs = fs
        self.path = path
        self.what = what
        self.broke_dead = False
        self._error = error or (lambda exc, _action, _path: exc)

    def acquire(self, wait: bool = True) -> bool:
        """Take the lock; waits for a live holder unless ``wait`` is False (then returns False).

        Raises:
            LockTimeout: waited :data:`LOCK_TIMEOUT` for a live holder.
            Exception: the storage failed, as sorted by the ``error`` function given.
        """
        try:
            return self._acquire(wait)
        except LockTimeout:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted and redacted by the caller's function
            raise self._error(exc, "taking the lock", self.path) from None

    @abc.abstractmethod
    def _acquire(self, wait: bool) -> bool:
        """:meth:`acquire` without sorting errors."""

    @abc.abstractmethod
    def release(self) -> None:
        """Let the next writer in. Never raises."""

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _timeout(self) -> LockTimeout:
        return LockTimeout(
            f"{self.what} has been stored by another run for over {LOCK_TIMEOUT:g} s "
            f"(lock {self.fs.unstrip_protocol(self.path)}); wait for that run to end and materialize it again"
        )


def asset_lock(fs: AbstractFileSystem, path: str, what: str, error: StorageError | None = None) -> AssetLock:
    """The lock at ``path`` on ``fs`` for ``what`` (named in a timeout's message).

    ``error(exc, action, path)`` turns a storage exception into the one to raise (to sort and
    redact it, see :func:`~prefect_assets.io_managers.secrets.storage_error`).
    """
    lock = _FlockLock if is_local(fs) and fcntl is not None else _LeaseLock
    return lock(fs, fs._strip_protocol(path), what, error)


class _FlockLock(AssetLock):
    def __init__(self, fs: AbstractFileSystem, path: str, what: str, error: StorageError | None = None) -> None:
        super().__init__(fs, path, what, error)
        self._fd: int | None = None

    def _acquire(self, wait: bool) -> bool:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait or time.monotonic() > deadline:
                    os.close(fd)
                    if not wait:
                        return False
                    raise self._timeout() from None
                time.sleep(_POLL_SECONDS)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases the flock


class _LeaseLock(AssetLock):
    def __init__(self, fs: AbstractFileSystem, path: str, what: str, error: StorageError | None = None) -> None:
        super().__init__(fs, path, what, error)
        self._token = uuid.uuid4().hex
        self._held = False
        self._mutex = threading.Lock()  # renewal and release never interleave

    def _acquire(self, wait: bool) -> bool:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            if self._create():
                with self._mutex:
                    self._held = True
                _RENEWER.add(self)
                return True
            holder = self._holder()
            if holder is None:
                continue  # released meanwhile: try again at once
            lease, etag = holder
            if _is_dead(lease):
                if self._break(etag):
                    self.broke_dead = True
                continue
            if not wait:
                return False
            if time.monotonic() > deadline:
                raise self._timeout()
            time.sleep(_POLL_SECONDS * 4)

    def release(self) -> None:
        _RENEWER.discard(self)
        with self._mutex:
            if not self._held:
                return
            self._held = False
            with contextlib.suppress(Exception):
                self.fs.rm_file(self.path)

    def renew(self) -> None:
        with self._mutex:
            if self._held:
                with contextlib.suppress(Exception):  # a missed renewal only shortens the lease
                    self.fs.pipe_file(self.path, self._content())

    def _content(self) -> bytes:
        return json.dumps({
            "host": _HOST, "pid": os.getpid(), "token": self._token, "expires": time.time() + LEASE_SECONDS,
        }).encode()

    def _create(self) -> bool:
        try:
            self.fs.pipe_file(self.path, self._content(), mode="create")
        except FileExistsError:
            return False
        except TypeError:  # an older fsspec backend without mode=: check, then write (not atomic)
            if self.fs.exists(self.path):
                return False
            self.fs.pipe_file(self.path, self._content())
        return True

    def _holder(self) -> tuple[dict[str, Any], str | None] | None:
        """The current lease and its ETag, or None if there is none any more."""
        self.fs.invalidate_cache(self.path)  # a listing cached earlier would show an old lease
        try:
            info = self.fs.info(self.path)
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        try:
            lease = json.loads(data)
        except ValueError:
            lease = {}  # unreadable: treated as expired
        return (lease if isinstance(lease, dict) else {}), info.get("ETag")

    def _break(self, etag: str | None) -> bool:
        """Delete a dead lease, only if it is still the one judged dead; True if this call did."""
        call_s3 = getattr(self.fs, "call_s3", None)
        try:
            if etag and protocols(self.fs) & MULTIPART_PROTOCOLS and call_s3 is not None:
                bucket, key, _ = self.fs.split_path(self.path)
                call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)
            else:
                self.fs.rm_file(self.path)
        except OSError:  # someone else broke or replaced it first
            return False
        self.fs.invalidate_cache(self.path)
        return True


def _is_dead(lease: dict[str, Any]) -> bool:
    """Whether a lease's owner is gone: expired, or a process of this machine that has exited."""
    expires = lease.get("expires")
    if not isinstance(expires, (int, float)) or expires < time.time():
        return True
    if lease.get("host") == _HOST and isinstance(lease.get("pid"), int):
        return not _process_exists(lease["pid"])
    return False


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _Renewer:
    """One daemon thread renewing every lease this process holds, every third of a lease."""

    def __init__(self) -> None:
        self._leases: set[_LeaseLock] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, lease: _LeaseLock) -> None:
        with self._guard:
            self._leases.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="prefect-assets-leases", daemon=True)
                self._thread.start()

    def discard(self, lease: _LeaseLock) -> None:
        with self._guard:
            self._leases.discard(lease)

    def _run(self) -> None:
        while True:
            time.sleep(LEASE_SECONDS / 3)
            with self._guard:
                leases = list(self._leases)
            for lease in leases:
                lease.renew()


_RENEWER = _Renewer()
