"""Hashing on the way out: data versions computed over exactly the bytes that are stored.

Formats write into a :class:`HashingWriter`, which hashes every byte and forwards it to an
atomic writer (see :mod:`prefect_assets.io_managers.storage`), so the record's data version
always names the stored bytes, without a second pass over them.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import TYPE_CHECKING, Any

from prefect_assets.io_managers.storage import BytesLike

if TYPE_CHECKING:
    from prefect_assets.io_managers.storage import AtomicWriter


def content_hasher() -> Any:
    """The hash behind data versions; same as :func:`prefect_assets.assets.versions.content_version`."""
    return hashlib.sha256()


def version_of(hasher: Any) -> str:
    """A data version from a :func:`content_hasher` that has seen all the bytes."""
    return hasher.hexdigest()[:16]


class HashingWriter:
    """A write-only file that hashes what passes through it into an :class:`AtomicWriter`.

    Formats write into it (``pq.write_table(table, writer)``, ``pickle.dump(obj, writer)``);
    :meth:`finish` returns the data version and size of exactly the bytes that reached the
    target. Small outputs are hashed and forwarded inline. Once an output passes
    ``batch_size``, batches go to a background thread that hashes and writes them while the
    caller keeps encoding: hashlib and file/network writes release the GIL, so on two cores the
    hashing and IO cost almost nothing on top of the encoding. At most ``max_batches`` batches
    wait in between, which bounds the memory.

    Args:
        target: where the bytes go.
        batch_size: bytes gathered before they are handed on.
        max_batches: batches in flight before :meth:`write` waits.

    Raises:
        Exception: an error of the target is raised from the next :meth:`write` (so an
            encoder stops early) or from :meth:`finish`; :attr:`error` holds it.
    """

    closed = False  # pyarrow checks it on file objects

    def __init__(self, target: AtomicWriter, batch_size: int = 4 * 2**20, max_batches: int = 4) -> None:
        self.target = target
        self.error: BaseException | None = None
        self._hasher = content_hasher()
        self._batch_size = batch_size
        self._batch: list[BytesLike] = []
        self._batch_bytes = 0
        self._size = 0
        self._queue: queue.Queue | None = None
        self._max_batches = max_batches
        self._thread: threading.Thread | None = None

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        """Nothing to do: data is handed on in batches, and :meth:`finish` sends the rest."""

    def write(self, data: BytesLike) -> int:
        if self.error is not None:
            raise self.error
        n = memoryview(data).nbytes
        if n == 0:
            return 0
        self._batch.append(data)
        self._batch_bytes += n
        self._size += n
        if self._batch_bytes >= self._batch_size:
            self._hand_on()
        return n

    def finish(self) -> tuple[str, int]:
        """Send what is left, wait for the background thread; return ``(data version, size)``.

        The target is not committed here: the caller commits it (or discards it).
        """
        if self._thread is None:
            self._process(self._take_batch())
        else:
            self._queue.put(self._take_batch())
            self._stop()
        if self.error is not None:
            raise self.error
        self.closed = True
        return version_of(self._hasher), self._size

    def abort(self) -> None:
        """Stop the background thread without raising (the caller is handling another error)."""
        self._batch = []
        if self._thread is not None:
            self._stop()
        self.closed = True

    def _take_batch(self) -> list[BytesLike]:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        return batch

    def _hand_on(self) -> None:
        if self._thread is None:
            self._queue = queue.Queue(maxsize=self._max_batches)
            self._thread = threading.Thread(target=self._run, name="prefect-assets-writer", daemon=True)
            self._thread.start()
        self._queue.put(self._take_batch())

    def _stop(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self.error is None:  # after an error keep draining, so write() never blocks
                try:
                    self._process(batch)
                except BaseException as exc:  # noqa: BLE001 - handed to the producer
                    self.error = exc

    def _process(self, batch: list[BytesLike]) -> None:
        # Piece by piece, not joined into one block first: a join would copy every byte once
        # more. The large pieces (pyarrow's ~1 MiB pages) are hashed and written with the GIL
        # released; the small ones (page headers) cost next to nothing.
        hash_update, write = self._hasher.update, self.target.write
        for piece in batch:
            hash_update(piece)
            write(piece)
