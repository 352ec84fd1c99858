"""Filesystem operations that must never reach further than the paths they are given.

fsspec reads ``*``, ``?`` and ``[`` in a path as a glob in ``rm``, ``cat`` and ``expand_path``, so
a delete that named such a path could remove other assets' files; :func:`remove_exact` names
files one by one where that could happen. :func:`local_write_problem` finds out whether a local
folder can take new files without writing anything, so a run can refuse to start instead of
failing every asset.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from pathlib import Path

from fsspec import AbstractFileSystem

from prefect_assets.io_managers.storage import (
    MULTIPART_PROTOCOLS,
    TEMPORARY_NAME,
    is_local,
    is_object_store,
    protocols,
)


def local_write_problem(fs: AbstractFileSystem, path: str) -> str | None:
    """Why no file can be created under ``path`` on the local disk; None if one can.

    Probes the nearest folder that exists with an unnamed temporary file (``O_TMPFILE`` on
    Linux: it never appears in the folder), so checking writes nothing and creates no folder.
    Other backends answer None: an object store says whether a write is allowed only when
    one is made, and their credentials are checked by reading a record.
    """
    if not is_local(fs):
        return None
    folder = Path(fs._strip_protocol(path))
    try:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            return f"{folder} is a file, not a folder"
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:  # a folder on the way that we may not enter, a read-only disk, ...
        return f"cannot create files in {folder} ({exc.strerror or exc})"
    return None


#: Characters fsspec's ``rm``, ``cat`` and ``expand_path`` read as a glob.
GLOB_CHARS = "*?["


def has_glob(path: str) -> bool:
    """Whether fsspec would expand ``path`` as a glob pattern instead of naming one file."""
    return any(c in path for c in GLOB_CHARS)


def remove_exact(fs: AbstractFileSystem, paths: list[str]) -> None:
    """Delete exactly the files ``paths`` name; missing ones are fine.

    fsspec's ``rm`` reads ``*``, ``?`` and ``[`` in a path as a glob, so a path holding one
    would delete whatever it matches, other assets' files included. Asset keys and partition
    keys cannot hold them, but a ``base_uri`` can (``s3://lake/run[1]``): such paths are
    removed one by one with ``rm_file``, which never globs.

    Raises:
        OSError: the storage refused a delete (other than for a missing file).
    """
    if protocols(fs) & MULTIPART_PROTOCOLS and not any(has_glob(p) for p in paths):
        # One DeleteObjects request for all of them; S3 does not mind missing keys.
        fs.rm(list(paths))
        return
    for path in paths:
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass


def remove_temporaries(fs: AbstractFileSystem, folder: str, names: str | Collection[str]) -> int:
    """Delete the temporary files in ``folder`` of the targets named ``names``; returns how many.

    Temporary files are named after their target (see
    :func:`~prefect_assets.io_managers.storage.temporary_name`), so exactly those of the given
    targets are matched, never another asset's. Only call it while no live writer of those
    targets can exist (holding the asset's lock). Object stores have no temporary files.
    """
    if is_object_store(fs):
        return 0
    wanted = {names} if isinstance(names, str) else set(names)
    try:
        entries = fs.ls(folder, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    doomed = []
    for path in entries:
        match = TEMPORARY_NAME.match(path.rpartition("/")[2])
        if match and match.group(1) in wanted:
            doomed.append(path)
    for path in doomed:
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass
    return len(doomed)


def abort_uploads(fs: AbstractFileSystem, paths: list[str]) -> int:
    """Abort the unfinished S3 multipart uploads to exactly ``paths``; returns how many.

    A writer killed mid-upload leaves its parts stored (and billed) but invisible. Only call
    it while no live writer of those paths can exist (holding the asset's lock). Other
    backends have no unfinished uploads.
    """
    call_s3 = getattr(fs, "call_s3", None)
    if call_s3 is None or not protocols(fs) & MULTIPART_PROTOCOLS or not paths:
        return 0
    targets = {fs._strip_protocol(p) for p in paths}
    bucket, _, _ = fs.split_path(paths[0])
    prefix = os.path.commonprefix([fs.split_path(p)[1] for p in paths])
    aborted = 0
    for upload in call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix).get("Uploads", []):
        if f"{bucket}/{upload['Key']}" in targets:
            call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            aborted += 1
    return aborted
