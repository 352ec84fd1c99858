"""Atomic writes on any fsspec filesystem.

A reader must never see half a file, and a crash mid-write must leave the previous version
intact. How to get there depends on the backend:

- **Local disk**: write a temporary file in the same directory, flush it to disk, then
  ``os.replace`` it onto the final name. A rename within one directory is atomic on POSIX and
  on Windows, so readers see either the old file or the new one.
- **Object stores** (S3, GCS, Azure, memory): one ``pipe_file`` call, which is a single PUT.
  An object store makes an object visible only once the whole upload has completed.

>>> import fsspec, tempfile, os
>>> fs = fsspec.filesystem("file")
>>> path = os.path.join(tempfile.mkdtemp(), "a", "b.json")
>>> write_atomic(fs, path, b"{}")
>>> fs.cat_file(path)
b'{}'
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Union

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

#: What the writers accept: anything with the buffer protocol that ``len()`` measures in bytes.
BytesLike = Union[bytes, bytearray, memoryview]


def is_local(fs: AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local disk, where atomicity comes from ``os.replace``."""
    return isinstance(fs, LocalFileSystem)


def write_atomic(fs: AbstractFileSystem, path: str, data: BytesLike) -> None:
    """Write ``data`` to ``path`` so that readers see the old content or the new, never a mix.

    Args:
        fs: any fsspec filesystem.
        path: the destination, in ``fs``'s own form (no protocol needed, but one is accepted).
        data: the complete content. It is written in one go, which is why it is bytes and not
            a stream: the atomicity of object stores comes from a single PUT.

    Raises:
        OSError: whatever the backend raises. On local disk the temporary file is removed
            first, so a failed write leaves no trace and the previous file is untouched.
    """
    if is_local(fs):
        _write_local(fs._strip_protocol(path), data)
        return
    # Not ``with fs.open(path, "wb") as f: f.write(data)``: an fsspec file object commits in
    # ``__exit__`` even when the block raised, so an error halfway would publish a partial
    # object. ``pipe_file`` uploads the complete bytes in one request or fails without a
    # trace. (On non-object backends such as SFTP pipe_file is only as atomic as the server.)
    if not isinstance(data, bytes):
        data = bytes(data)  # some backends (aiobotocore) only take real bytes
    fs.pipe_file(path, data)


def _write_local(path: str, data: BytesLike) -> None:
    directory, name = os.path.split(path)
    os.makedirs(directory or ".", exist_ok=True)
    # Same directory as the target: os.replace is only atomic within one filesystem, and a
    # dot-name keeps the temporary out of casual listings. The uuid lets concurrent writers of
    # the same path (two runs of one asset) each have their own temporary; the last rename wins.
    tmp = os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            # Without fsync a power loss can persist the rename before the data, leaving an
            # empty file where the previous version was.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
