"""What killed writers leave behind, found and removed without touching anything a record names.

A writer killed mid-store leaves, depending on the backend, a temporary file under
``_prefect_assets/tmp``, an unfinished S3 multipart upload (invisible, but its parts are stored
and billed), or a lease that blocks the asset until it expires. Each asset's next store removes
its own (:meth:`~prefect_assets.io_managers.fsspec.FsspecIOManager.clean_leftovers`);
:func:`sweep` finds those of every asset at once, for the start of every command that reads
records, and for ``prefect-assets gc``, which also finds:

- files of an asset in a format other than the one its record names (a run killed after writing
  the record, before removing the file it replaced);
- temporary files that writers before 0.3.0 left beside their targets (``.<name>.tmp-<hex>``).

Every removal happens while holding the lock of the asset concerned, taken without waiting: an
asset being stored right now is skipped, so a live writer's files are never touched.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefect_assets.errors import AssetsError
from prefect_assets.io_managers.exact import abort_uploads, remove_exact
from prefect_assets.io_managers.formats import FORMATS
from prefect_assets.io_managers.locks import LockTimeout
from prefect_assets.io_managers.secrets import storage_error
from prefect_assets.io_managers.storage import (
    MULTIPART_PROTOCOLS,
    TEMPORARY_NAME,
    is_local,
    is_object_store,
    protocols,
)

if TYPE_CHECKING:
    from prefect_assets.io_managers.fsspec import FsspecIOManager
    from prefect_assets.io_managers.records import MaterializationRecord

_LEGACY_TEMPORARY = re.compile(r"^\.(.+)\.tmp-[0-9a-f]{32}$")
_EXTENSIONS = tuple(f".{fmt.extension}" for fmt in FORMATS.values())


@dataclass(frozen=True)
class Leftover:
    """One thing a killed writer left behind.

    Attributes:
        kind: ``temporary file``, ``unfinished upload``, ``abandoned lock``, ``superseded file``.
        path: where it is, in the filesystem's form.
        stem: the asset (partition) it belongs to, as a relative path: ``raw/orders``.
        bytes: its size, when known.
    """

    kind: str
    path: str
    stem: str
    bytes: int | None = None


def sweep(io: FsspecIOManager, remove: bool = True, records: Iterable[MaterializationRecord] = ()) -> list[Leftover]:
    """Find (and unless ``remove`` is False, remove) what killed writers left under ``io``.

    Args:
        io: the IO manager whose ``base_uri`` is searched.
        remove: False only reports.
        records: the latest records; when given, files in another format than the recorded one
            and temporaries from before 0.3.0 are looked for too (one listing of the whole base).

    Returns:
        Everything found that no live writer owns, removed unless ``remove`` is False.

    Raises:
        AssetsError: the storage refused the credentials, is unreachable or has no such bucket.
        OSError: any other storage failure (message without credentials).
    """
    try:
        return _sweep(io, remove, list(records))
    except (AssetsError, LockTimeout):
        raise
    except Exception as exc:  # noqa: BLE001 - sorted and redacted by storage_error
        raise storage_error(exc, "cleaning up after interrupted runs under", io.base_uri, io.redact, io.where) from None


def _sweep(io: FsspecIOManager, remove: bool, records: list[MaterializationRecord]) -> list[Leftover]:
    found = _temporaries(io) + _uploads(io) + _leases(io)
    if records:
        found += _superseded_and_legacy(io, records)
    by_stem: dict[str, list[Leftover]] = defaultdict(list)
    for leftover in found:
        by_stem[leftover.stem].append(leftover)
    owned: list[Leftover] = []
    for stem, leftovers in by_stem.items():
        lock = io.record_store.lock_at(stem)
        if not lock.acquire(wait=False):
            continue  # being stored right now: those files are a live writer's
        try:
            owned += leftovers
            if remove:
                _remove(io, leftovers)
        finally:
            lock.release()
    return owned


def _temporaries(io: FsspecIOManager) -> list[Leftover]:
    """Temporary files under ``_prefect_assets/tmp/<area>/``, with the asset each belongs to."""
    fs, tmp_root = io.filesystem, f"{io.record_store.work_dir}/tmp"
    if is_object_store(fs):
        return []  # object stores are written without temporary files
    try:
        fs.invalidate_cache(tmp_root)
        listing = fs.find(tmp_root, detail=True)
    except FileNotFoundError:
        return []
    found = []
    for path, info in listing.items():
        relative = path[len(tmp_root) + 1:]
        _area, _, rest = relative.partition("/")
        match = TEMPORARY_NAME.match(rest.rpartition("/")[2])
        if not match or not rest:
            continue
        target = f"{rest.rpartition('/')[0]}/{match.group(1)}".lstrip("/")
        found.append(Leftover("temporary file", path, target.rpartition(".")[0], info.get("size")))
    return found


def _uploads(io: FsspecIOManager) -> list[Leftover]:
    """Unfinished S3 multipart uploads to asset paths under the base."""
    fs = io.filesystem
    call_s3 = getattr(fs, "call_s3", None)
    if call_s3 is None or not protocols(fs) & MULTIPART_PROTOCOLS:
        return []
    bucket, prefix, _ = fs.split_path(io.root)
    prefix = f"{prefix}/" if prefix else ""
    found = []
    for upload in call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix).get("Uploads", []):
        relative = upload["Key"][len(prefix):]
        if relative.endswith(_EXTENSIONS) and not relative.startswith("_prefect_assets/"):
            found.append(Leftover("unfinished upload", f"{bucket}/{upload['Key']}", relative.rpartition(".")[0]))
    return found


def _leases(io: FsspecIOManager) -> list[Leftover]:
    """Leases on shared stores: each exists only while held, or after its holder died.

    Taking the lock of a dead one breaks it, and releasing it then removes it.
    """
    fs, locks_root = io.filesystem, f"{io.record_store.work_dir}/locks"
    if is_local(fs):
        return []  # local lock files are flock()ed, never left held
    try:
        fs.invalidate_cache(locks_root)
        paths = fs.find(locks_root)
    except FileNotFoundError:
        return []
    return [
        Leftover("abandoned lock", path, path[len(locks_root) + 1:].removesuffix(".lock"))
        for path in paths if path.endswith(".lock")
    ]


def _superseded_and_legacy(io: FsspecIOManager, records: list[MaterializationRecord]) -> list[Leftover]:
    fs, root = io.filesystem, io.root
    try:
        fs.invalidate_cache(root)
        listing = fs.find(root, detail=True)
    except FileNotFoundError:
        return []
    recorded = {f"{root}/{r.path}" for r in records if r.path}
    recorded_stems = {r.path.rpartition(".")[0] for r in records if r.path}
    found = []
    for path, info in listing.items():
        relative = path[len(root) + 1:]
        if relative.startswith("_prefect_assets/"):
            continue
        folder, _, name = relative.rpartition("/")
        legacy = _LEGACY_TEMPORARY.match(name)
        if legacy:
            target = f"{folder}/{legacy.group(1)}".lstrip("/")
            found.append(Leftover("temporary file", path, target.rpartition(".")[0], info.get("size")))
        elif relative.endswith(_EXTENSIONS) and path not in recorded and relative.rpartition(".")[0] in recorded_stems:
            found.append(Leftover("superseded file", path, relative.rpartition(".")[0], info.get("size")))
    return found


def _remove(io: FsspecIOManager, leftovers: list[Leftover]) -> None:
    fs = io.filesystem
    uploads = [x.path for x in leftovers if x.kind == "unfinished upload"]
    files = [x.path for x in leftovers if x.kind in ("temporary file", "superseded file")]
    if uploads:
        abort_uploads(fs, uploads)
    if files:
        remove_exact(fs, files)
