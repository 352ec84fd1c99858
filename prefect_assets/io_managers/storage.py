"""Moving bytes to and from any fsspec filesystem: atomically, hashed on the way, fast.

A reader must never see half a file, and a failure mid-write must leave the previous version
intact. How to get there depends on the backend, so :func:`open_atomic` picks a writer with
*write-then-commit* semantics (the shape of fsspec's ``Transaction``: nothing is visible until
:meth:`AtomicWriter.commit`; :meth:`AtomicWriter.discard` leaves no trace). Commit is two steps,
:meth:`~AtomicWriter.seal` then :meth:`~AtomicWriter.publish`, so that a caller can record its
intent between them (see :mod:`~prefect_assets.io_managers.commit`):

================= ==================================================================
local disk        a temporary file (in ``tmp_dir`` when given, else beside the target;
                  the same filesystem either way), ``fsync``, then ``os.replace`` onto
                  the final name (a rename within one filesystem is atomic).
object stores     S3, GCS, Azure, memory: an object becomes visible only once its upload
                  completes. Small payloads go up in one ``pipe_file`` (a single PUT);
                  large ones on S3 stream as a multipart upload that is completed on
                  commit and aborted on discard.
anything else     SFTP, HDFS, SMB...: a temporary file, then ``fs.mv`` onto
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
import mmap
import os
import re
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

#: Local files of at least this many bytes are memory-mapped by :func:`read_local`, smaller ones read.
MAP_SIZE = 1024 * 1024
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

    def seal(self) -> Identity:
        """Finish writing, without publishing; afterwards only :meth:`publish` or :meth:`discard`.

        Returns what identifies the file once published, when that is known before publishing
        (the local writer's file keeps its inode and modification time through the rename).
        If it raises, nothing was published and the temporary state is cleaned up.
        """
        return None

    @abc.abstractmethod
    def publish(self) -> Identity:
        """Make what was written visible under :attr:`path`, replacing what was there, in one step.

        Returns what identifies the published file in a listing (:data:`Identity`), or None.
        If it raises, nothing was published and the temporary state is cleaned up.
        """

    def commit(self) -> Identity:
        """:meth:`seal` then :meth:`publish`."""
        self.seal()
        return self.publish()

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


def open_atomic(fs: AbstractFileSystem, path: str, tmp_dir: str | None = None) -> AtomicWriter:
    """A write-then-commit file for ``path`` on ``fs``, with the right strategy for the backend.

    Args:
        fs: any fsspec filesystem.
        path: the destination, in ``fs``'s own form (a protocol is accepted and stripped).
        tmp_dir: where a temporary file goes on backends that need one (local disk, rename
            backends), named :func:`temporary_name`; by default beside the target. It must be on
            the target's filesystem.
    """
    path = fs._strip_protocol(path)
    if is_object_store(fs):
        return _ObjectStoreWriter(fs, path)
    parent, _, name = path.rpartition("/")
    tmp = f"{(tmp_dir or parent).rstrip('/')}/{temporary_name(name)}" if (tmp_dir or parent) else temporary_name(name)
    writer = _LocalWriter if is_local(fs) else _RenameWriter
    return writer(fs, path, tmp)


def temporary_name(name: str) -> str:
    """The name of a temporary file for a target named ``name``: ``<name>.<32 hex>.tmp``.

    Unique per writer, so concurrent writers of one target never share one; recognisable
    (:data:`TEMPORARY_NAME`), so leftovers of a killed writer can be found and removed.
    """
    return f"{name}.{uuid.uuid4().hex}.tmp"


#: Matches :func:`temporary_name`'s names; group 1 is the target's name.
TEMPORARY_NAME = re.compile(r"^(.+)\.[0-9a-f]{32}\.tmp$")

#: What a published file is known by in a listing: ``{"ino": ..., "mtime": ...}`` on local
#: disk, ``{"etag": ...}`` on S3, None where nothing cheap identifies it. A file replaced or
#: rewritten behind our back gets another identity, which a listing shows without reading it.
Identity = dict[str, Any] | None


def write_atomic(
    fs: AbstractFileSystem, path: str, data: BytesLike, tmp_dir: str | None = None, durable: bool = True
) -> None:
    """Write ``data`` to ``path`` so that readers see the old content or the new, never a mix.

    ``durable=False`` skips the local ``fsync``: atomic for readers and against a killed
    process, but a power loss may leave the old content or none.

    Raises:
        OSError: whatever the backend raises; the previous content is untouched and no
            temporary file is left behind.
    """
    with open_atomic(fs, path, tmp_dir) as f:
        if isinstance(f, _LocalWriter):
            f.durable = durable
        f.write(data)


# Local disks: push dirty pages to disk every this many bytes while writing, from the writer
# thread, so the fsync before the rename has little left to do (it would otherwise stall the
# commit for the whole file).
_LOCAL_SYNC_EVERY = 64 * 2**20
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


class _LocalWriter(AtomicWriter):
    """Temporary file, fsync, ``os.replace``."""

    def __init__(self, fs: AbstractFileSystem, path: str, tmp: str) -> None:
        super().__init__(fs, path)
        self.tmp = tmp
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        os.makedirs(os.path.dirname(tmp) or ".", exist_ok=True)
        self._file = open(tmp, "wb")  # noqa: SIM115 - open until publish() or discard()
        self._unsynced = 0
        self.durable = True

    def write(self, data: BytesLike) -> int:
        n = self._file.write(data)
        self._unsynced += n
        if self._unsynced >= _LOCAL_SYNC_EVERY:
            self._file.flush()
            _fdatasync(self._file.fileno())
            self._unsynced = 0
        return n

    def seal(self) -> Identity:
        try:
            self._file.flush()
            # Without fsync a power loss can persist the rename before the data, leaving an
            # empty file where the previous version was.
            if self.durable:
                os.fsync(self._file.fileno())
            stat = os.fstat(self._file.fileno())
            self._file.close()
        except BaseException:
            self.discard()
            raise
        return local_identity(stat)

    def publish(self) -> Identity:
        if not self._file.closed:
            self.seal()
        try:
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        return local_identity(os.stat(self.path))

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

    def publish(self) -> Identity:
        try:
            if self._upload is not None:
                self._upload.close()
                self._upload.commit()
                self._upload = None
                response = None
            else:
                data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
                if not isinstance(data, bytes):
                    data = bytes(data)  # aiobotocore only sends real bytes
                self._pending = []
                response = self.fs.pipe_file(self.path, data)
        except BaseException:
            self.discard()
            raise
        if not protocols(self.fs) & MULTIPART_PROTOCOLS:
            return None
        # S3 answers a PUT with the object's ETag; a completed multipart upload is asked once.
        etag = response.get("ETag") if isinstance(response, dict) else None
        if etag is None:
            with contextlib.suppress(Exception):
                etag = self.fs.info(self.path).get("ETag")
        return {"etag": etag.strip('"')} if etag else None

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
    """Temporary file, then ``fs.mv`` onto the target: as atomic as the backend's rename."""

    def __init__(self, fs: AbstractFileSystem, path: str, tmp: str) -> None:
        super().__init__(fs, path)
        self.tmp = tmp
        for folder in (path.rpartition("/")[0], tmp.rpartition("/")[0]):
            if folder:
                fs.makedirs(folder, exist_ok=True)
        self._file = fs.open(self.tmp, "wb")

    def write(self, data: BytesLike) -> int:
        self._file.write(data)
        return memoryview(data).nbytes

    def seal(self) -> Identity:
        try:
            self._file.close()
        except BaseException:
            self.discard()
            raise
        return None

    def publish(self) -> Identity:
        try:
            if not self._file.closed:
                self._file.close()
            self.fs.mv(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        return None

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()  # publishes the temporary name only, removed next
        with contextlib.suppress(Exception):
            self.fs.rm_file(self.tmp)


def local_identity(stat: os.stat_result) -> Identity:
    """A local file's :data:`Identity`: its inode and modification time (a rename keeps both)."""
    return {"ino": stat.st_ino, "mtime": stat.st_mtime}


def listed_identity(info: dict[str, Any]) -> Identity:
    """The :data:`Identity` of a file as ``fs.info`` or ``fs.find(detail=True)`` describe it."""
    if "ino" in info and "mtime" in info:
        return {"ino": info["ino"], "mtime": info["mtime"]}
    etag = info.get("ETag")
    return {"etag": etag.strip('"')} if etag else None


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
    return read_local(path)[0]


def read_local(path: str) -> tuple[Any, Identity]:
    """A local file's content and the :data:`Identity` of the very file it came from.

    A file of :data:`MAP_SIZE` bytes or more is memory-mapped, as a zero-copy ``pyarrow.Buffer``:
    no copy into Python memory, and Parquet decodes straight from the page cache. A smaller one
    is read into ``bytes``: cheaper than a mapping for small values, and a run whose values are
    all small never imports pyarrow. The identity comes from the open file, not the path, so a
    concurrent ``os.replace`` of the path can neither change what is read nor make it look like
    another file.

    Raises:
        FileNotFoundError: no such file.
    """
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        if stat.st_size < MAP_SIZE:
            return f.read(), local_identity(stat)
        import pyarrow as pa

        # The mapping holds the inode, so the content stays that file's even once replaced;
        # it is unmapped when the last buffer over it is released.
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return pa.py_buffer(mapped), local_identity(stat)
