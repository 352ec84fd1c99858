"""Moving bytes to and from any fsspec filesystem: atomically, hashed on the way, fast.

A reader must never see half a file, and a failure mid-write must leave the previous version
intact. How to get there depends on the backend, so :func:`open_atomic` picks a writer with
*write-then-commit* semantics (the shape of fsspec's ``Transaction``: nothing is visible until
:meth:`AtomicWriter.commit`; :meth:`AtomicWriter.discard` leaves no trace):

================= ==================================================================
local disk        a temporary file in the same directory, ``fsync``, then
                  ``os.replace`` onto the final name (a rename within one directory is
                  atomic on POSIX and Windows).
object stores     S3, GCS, Azure, memory: an object becomes visible only once its upload
                  completes. Small payloads go up in one ``pipe_file`` (a single PUT);
                  large ones on S3 stream as a multipart upload that is completed on
                  commit and aborted on discard.
anything else     SFTP, HDFS, SMB, ``dir::``...: a temporary sibling, then ``fs.mv`` onto
                  the final name, which is as atomic as the backend's rename.
================= ==================================================================

Why not simply ``with fs.open(path, "wb") as f: f.write(...)``? An fsspec file object
commits in ``__exit__`` even when the block raised, so an error halfway (a failing encoder,
a full disk, a lost connection) would publish a partial object.

:class:`HashingWriter` sits in front of an :class:`AtomicWriter`: formats write into it, it
hashes exactly the bytes that go to storage (the record's data version) and, for large
outputs, does the hashing and the IO on a background thread so that encoding and upload run
on two cores at once. :func:`read_all` reads a whole object back (memory-mapped on local disk,
in concurrent ranges on S3).

>>> import fsspec, tempfile, os
>>> fs = fsspec.filesystem("file")
>>> path = os.path.join(tempfile.mkdtemp(), "a", "b.json")
>>> write_atomic(fs, path, b"{}")
>>> fs.cat_file(path)
b'{}'
>>> with open_atomic(fs, path) as f:
...     _ = f.write(b'{"v": 2}')
...     raise RuntimeError("encoder failed")        # doctest: +ELLIPSIS
Traceback (most recent call last):
RuntimeError: encoder failed
>>> fs.cat_file(path)                             # the previous version, untouched
b'{}'
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

#: What the writers accept: anything with the buffer protocol (sizes are ``memoryview(x).nbytes``).
BytesLike = bytes | bytearray | memoryview

#: Protocols where an object appears only when its upload completes, so one request is atomic.
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "oci", "oss", "memory"})

#: Object stores on which large payloads stream as a multipart upload (commit = complete,
#: discard = abort). Others buffer the payload and send it in one ``pipe_file``.
MULTIPART_PROTOCOLS = frozenset({"s3", "s3a"})

#: Object stores on which a large object is read in concurrent ranges. One S3 connection
#: tops out well below the link's bandwidth; four ranges in flight come close to it.
RANGED_READ_PROTOCOLS = frozenset({"s3", "s3a"})

#: Bytes per range in :func:`read_all` (objects larger than this are read in ranges).
RANGE_SIZE = 64 * 2**20


def protocols(fs: AbstractFileSystem) -> frozenset[str]:
    """The names ``fs`` answers to (``fs.protocol`` is a str or a tuple)."""
    proto = fs.protocol
    return frozenset([proto] if isinstance(proto, str) else proto)


def is_local(fs: AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local disk, where atomicity comes from ``os.replace``."""
    return isinstance(fs, LocalFileSystem)


def is_object_store(fs: AbstractFileSystem) -> bool:
    """Whether one upload to ``fs`` is atomic by itself (S3, GCS, Azure Blob, memory)."""
    return bool(protocols(fs) & OBJECT_STORE_PROTOCOLS)


# --- atomic writers ------------------------------------------------------------------------


class AtomicWriter(abc.ABC):
    """A file nobody can see until :meth:`commit`; :meth:`discard` leaves no trace of it.

    Used as a context manager it commits on a clean exit and discards on an exception:

        with open_atomic(fs, "bucket/data.parquet") as f:
            f.write(part_one)
            f.write(part_two)      # an exception anywhere here: the old object stays

    Data handed to :meth:`write` must not be modified afterwards (object-store writers keep a
    reference until the upload).
    """

    def __init__(self, fs: AbstractFileSystem, path: str) -> None:
        self.fs = fs
        self.path = path

    @abc.abstractmethod
    def write(self, data: BytesLike) -> int:
        """Append ``data``; returns its length."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Publish everything written under :attr:`path`, replacing what was there.

        If it raises, nothing was published and the temporary state is cleaned up.
        """

    @abc.abstractmethod
    def discard(self) -> None:
        """Throw away what was written. Best effort, never raises: it runs while an error propagates."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.fs.unstrip_protocol(self.path)}>"


def open_atomic(fs: AbstractFileSystem, path: str) -> AtomicWriter:
    """A write-then-commit file for ``path`` on ``fs``, with the right strategy for the backend.

    Args:
        fs: any fsspec filesystem.
        path: the destination, in ``fs``'s own form (a protocol is accepted and stripped).
    """
    path = fs._strip_protocol(path)
    if is_local(fs):
        return _LocalWriter(fs, path)
    if is_object_store(fs):
        return _ObjectStoreWriter(fs, path)
    return _RenameWriter(fs, path)


def write_atomic(fs: AbstractFileSystem, path: str, data: BytesLike) -> None:
    """Write ``data`` to ``path`` so that readers see the old content or the new, never a mix.

    Raises:
        OSError: whatever the backend raises; the previous content is untouched and no
            temporary file is left behind.
    """
    with open_atomic(fs, path) as f:
        f.write(data)


# Local disks: push dirty pages to disk every this many bytes while writing, from the writer
# thread, so the fsync before the rename has little left to do (it would otherwise stall the
# commit for the whole file).
_LOCAL_SYNC_EVERY = 64 * 2**20
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class _LocalWriter(AtomicWriter):
    """Temporary file beside the target, fsync, ``os.replace``."""

    def __init__(self, fs: AbstractFileSystem, path: str) -> None:
        super().__init__(fs, path)
        directory, name = os.path.split(path)
        os.makedirs(directory or ".", exist_ok=True)
        # Same directory as the target: os.replace is only atomic within one filesystem, and a
        # dot-name keeps the temporary out of casual listings. The uuid lets concurrent writers
        # of the same path (two runs of one asset) each have their own; the last rename wins.
        self.tmp = os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
        self._file = open(self.tmp, "wb")  # noqa: SIM115 - open until commit() or discard()
        self._unsynced = 0

    def write(self, data: BytesLike) -> int:
        n = self._file.write(data)
        self._unsynced += n
        if self._unsynced >= _LOCAL_SYNC_EVERY:
            self._file.flush()
            _fdatasync(self._file.fileno())
            self._unsynced = 0
        return n

    def commit(self) -> None:
        try:
            self._file.flush()
            # Without fsync a power loss can persist the rename before the data, leaving an
            # empty file where the previous version was.
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(OSError):
            os.remove(self.tmp)


class _ObjectStoreWriter(AtomicWriter):
    """One ``pipe_file`` for small payloads; a multipart upload for large ones on S3."""

    def __init__(self, fs: AbstractFileSystem, path: str) -> None:
        super().__init__(fs, path)
        self._pending: list[BytesLike] = []
        self._size = 0
        self._upload: Any = None  # the open multipart file, once the payload outgrew one part
        multipart = bool(protocols(fs) & MULTIPART_PROTOCOLS)
        # s3fs uploads a part whenever its buffer reaches the block size (50 MB by default,
        # ``default_block_size`` in storage_options); below that a single PUT is cheaper.
        self._part_size = int(getattr(fs, "default_block_size", 50 * 2**20)) if multipart else None

    def write(self, data: BytesLike) -> int:
        n = memoryview(data).nbytes
        if self._upload is not None:
            self._upload.write(data)
            return n
        self._pending.append(data)
        self._size += n
        if self._part_size is not None and self._size >= self._part_size:
            # autocommit=False: closing the file uploads the last part but does not complete
            # the upload; commit() completes it, discard() aborts it. Nothing is visible before.
            self._upload = self.fs.open(self.path, "wb", autocommit=False)
            pending, self._pending = self._pending, []
            for chunk in pending:
                self._upload.write(chunk)
        return n

    def commit(self) -> None:
        try:
            if self._upload is not None:
                self._upload.close()
                self._upload.commit()
                self._upload = None
            else:
                data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
                if not isinstance(data, bytes):
                    data = bytes(data)  # aiobotocore only sends real bytes
                self._pending = []
                self.fs.pipe_file(self.path, data)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self._pending = []
        upload, self._upload = self._upload, None
        if upload is None:
            return
        with contextlib.suppress(Exception):
            # Aborts the multipart upload. If even that fails (the connection is gone) the
            # parts stay invisible; a bucket lifecycle rule (AbortIncompleteMultipartUpload)
            # reclaims them.
            upload.discard()
        # Otherwise the file's __del__ would try to flush and close a discarded upload.
        upload.closed = True


class _RenameWriter(AtomicWriter):
    """Temporary sibling, then ``fs.mv`` onto the target: as atomic as the backend's rename."""

    def __init__(self, fs: AbstractFileSystem, path: str) -> None:
        super().__init__(fs, path)
        parent, _, name = path.rpartition("/")
        self.tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex}" if parent else f".{name}.tmp-{uuid.uuid4().hex}"
        if parent:
            fs.makedirs(parent, exist_ok=True)
        self._file = fs.open(self.tmp, "wb")

    def write(self, data: BytesLike) -> int:
        self._file.write(data)
        return memoryview(data).nbytes

    def commit(self) -> None:
        try:
            self._file.close()
            self.fs.mv(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()  # publishes the temporary name only, removed next
        with contextlib.suppress(Exception):
            self.fs.rm_file(self.tmp)


# --- reading -------------------------------------------------------------------------------


def read_all(fs: AbstractFileSystem, path: str, size: int | None = None) -> Any:
    """The whole content of ``path``: ``bytes``, or a zero-copy ``pyarrow.Buffer`` on local disk.

    Args:
        fs: any fsspec filesystem.
        path: what to read, in ``fs``'s form.
        size: the expected size, when known (from the record). On S3 an object larger than
            :data:`RANGE_SIZE` is then read in concurrent ranges; the last range is open-ended,
            so a larger object than expected shows up as a size mismatch, not a silent cut.

    Raises:
        FileNotFoundError: no such file.
    """
    if is_local(fs):
        return _read_local(fs._strip_protocol(path))
    if size is not None and size > RANGE_SIZE and protocols(fs) & RANGED_READ_PROTOCOLS:
        starts = list(range(0, size, RANGE_SIZE))
        ends: list[int | None] = [start + RANGE_SIZE for start in starts[:-1]] + [None]
        try:
            pieces = fs.cat_ranges([path] * len(starts), starts, ends, on_error="raise")
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # "Range not satisfiable": the object is smaller than expected. Read it whole and
            # let the caller's size check say so.
            return fs.cat_file(path)
        return b"".join(pieces)
    if protocols(fs) & RANGED_READ_PROTOCOLS:
        # "From byte 0": one GET. A plain cat_file makes s3fs ask for the size first (a HEAD),
        # and a single GET is also one consistent version of the object.
        try:
            return fs.cat_file(path, start=0)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # S3 refuses any range of an empty object
                raise
    return fs.cat_file(path)


def _read_local(path: str) -> Any:
    import pyarrow as pa

    if os.path.getsize(path) == 0:
        return b""  # an empty file cannot be memory-mapped
    # Memory-mapped: no copy into Python memory, and Parquet decodes straight from the page
    # cache. The mapping holds the inode, so a concurrent os.replace of the path cannot change
    # what we read.
    with pa.memory_map(path) as source:
        return source.read_buffer()
