"""The Prefect-free core of a materialization: load the inputs and call the asset function.

:func:`compute` does it in the current thread. :func:`compute_in_subprocess` does the same in a
child Python process that is killed at the asset's deadline: the only way to stop blocking code
(``time.sleep``, a socket read, a C extension) that runs on a worker *thread*, where no signal
reaches it — which is how Dask workers run tasks. This module imports no Prefect, so that child
starts quickly.

The child speaks a tiny protocol on its own stdout (the parent's pipe): length-prefixed
cloudpickle frames ``("log", level, message)``, then ``("ok", Computed)`` or
``("error", exception, traceback text)``. The user's ``print`` output goes to stderr instead.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import cloudpickle

from prefect_assets.assets.context import AssetContext, Output
from prefect_assets.assets.graph import AssetNode
from prefect_assets.assets.keys import AssetKey
from prefect_assets.io_managers import (
    InputContext,
    IOManager,
    MaterializationRecord,
    RecordStore,
)


class AssetTimeoutError(TimeoutError):
    """An asset ran past its ``timeout_seconds``.

    A :class:`TimeoutError`, so Prefect marks the task run ``TimedOut`` and applies the
    asset's retries, as for its own timeouts.
    """


@dataclass(frozen=True)
class AssetRun:
    """Everything one asset's task needs; plain data that pickles across processes.

    Attributes:
        node: the asset and its resolved inputs.
        io_manager: where its value is stored (``None``: the asset stores nothing itself).
        record_store: where its materialization record is written.
        input_io_managers: ``{upstream key: IOManager}`` for the inputs it loads.
        partition_key: the partition being materialized, if any.
        config: the asset's config model instance, if it declares one.
        project_name: used for the Prefect asset URI of assets that store nothing.
        timeout_seconds: the deadline for loading the inputs and computing the value (the
            asset's own option, else the project default).
        origin_pid: the process that planned the run. A task on a thread of *another* process
            runs on a worker (Dask), where only a child process makes a timeout bite.
    """

    node: AssetNode
    io_manager: IOManager | None
    record_store: RecordStore
    input_io_managers: Mapping[AssetKey, IOManager] = field(default_factory=dict)
    partition_key: str | None = None
    config: Any = None
    project_name: str = "assets"
    timeout_seconds: float | None = None
    origin_pid: int = field(default_factory=os.getpid)

    @property
    def key(self) -> AssetKey:
        return self.node.key


@dataclass(frozen=True)
class Computed:
    """An asset function's result: the value to store and all metadata gathered on the way."""

    value: Any
    metadata: dict[str, Any]


def compute(
    run: AssetRun, upstream_records: Mapping[str, MaterializationRecord | None], context: AssetContext
) -> Computed:
    """Load the inputs through their IO managers and call the asset function.

    Metadata merges, later wins: the asset's static ``metadata=``, ``context.add_metadata``
    calls, then an ``Output(value, metadata=...)`` return.
    """
    definition = run.node.definition
    kwargs: dict[str, Any] = {}
    for param, up in run.node.inputs.items():
        up_context = InputContext(up, run.partition_key, upstream_records.get(str(up)))
        kwargs[param] = run.input_io_managers[up].load_input(up_context)
    if definition.wants_context:
        kwargs["context"] = context
    if definition.config_schema is not None:
        kwargs["config"] = run.config
    value = definition.fn(**kwargs)
    metadata = {**definition.metadata, **context.metadata}
    if isinstance(value, Output):
        metadata.update(value.metadata)
        value = value.value
    if value is None and definition.promised_return and run.io_manager is not None:
        raise TypeError(
            f"asset '{run.key}' returned None, but its annotation promises {definition.promised_return}; "
            "return the value (or annotate it Optional if None is a value to store)"
        )
    return Computed(value, metadata)


def compute_in_subprocess(
    run: AssetRun,
    upstream_records: Mapping[str, MaterializationRecord | None],
    context: AssetContext,
    timeout_seconds: float,
) -> Computed:
    """:func:`compute` in a child process that is killed after ``timeout_seconds``.

    The child's log lines are replayed on ``context.log`` as they arrive. The value comes back
    pickled, so it must pickle (anything the IO managers store does).

    Raises:
        AssetTimeoutError: the deadline passed; the child was killed, nothing was stored.
        Exception: whatever the asset raised in the child (or a ``RuntimeError`` describing it
            when it does not pickle).
    """
    payload = cloudpickle.dumps((run, dict(upstream_records), context.run_id))
    # A fresh interpreter rather than multiprocessing: Dask runs its workers as daemonic
    # processes, which multiprocessing forbids to have children, and fork() from a threaded
    # worker can deadlock on locks other threads held.
    child = subprocess.Popen(
        [sys.executable, "-m", "prefect_assets.flows.compute"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
    )
    frames: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
    reader = threading.Thread(target=_read_frames, args=(child.stdout, frames), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout_seconds
    try:
        assert child.stdin is not None
        try:
            child.stdin.write(payload)
            child.stdin.close()
        except BrokenPipeError:  # the child died at start-up (its stderr says why): reported below
            pass
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssetTimeoutError(
                    f"asset '{run.key}' timed out after {timeout_seconds:g} s (timeout_seconds) "
                    "and its process was stopped"
                )
            try:
                frame = frames.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if frame is None:
                code = child.wait(timeout=10)
                raise RuntimeError(f"asset '{run.key}': its process exited with code {code} before returning")
            if frame[0] == "log":
                context.log.log(frame[1], "%s", frame[2])
            elif frame[0] == "ok":
                return frame[1]
            else:
                context.log.error("asset '%s' raised in its process:\n%s", run.key, frame[2])
                raise frame[1]
    finally:
        # Killed on every way out (deadline, error, or Prefect cancelling this thread).
        if child.poll() is None:
            child.kill()
        child.wait()
        reader.join(timeout=5)
        assert child.stdout is not None
        child.stdout.close()


def _read_frames(stream: IO[bytes], frames: queue.Queue) -> None:
    try:
        while True:
            header = stream.read(8)
            if len(header) < 8:
                break
            (size,) = struct.unpack("!Q", header)
            frames.put(pickle.loads(stream.read(size)))
    except Exception:  # noqa: BLE001, S110 - a broken frame ends the stream, reported as an early exit
        pass
    finally:
        frames.put(None)


class _FrameHandler(logging.Handler):
    """Sends the child's log records to the parent, which replays them on the run logger."""

    def __init__(self, send):
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        self._send(("log", record.levelno, record.getMessage()))


def _child_main() -> None:
    # The protocol owns the original stdout; the user's prints go to stderr.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def send(frame: tuple[Any, ...]) -> None:
        data = cloudpickle.dumps(frame)
        with lock:
            channel.write(struct.pack("!Q", len(data)) + data)
            channel.flush()

    run, upstream_records, run_id = cloudpickle.loads(sys.stdin.buffer.read())
    log = logging.getLogger(f"prefect_assets.asset.{run.key}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(_FrameHandler(send))
    context = AssetContext(
        key=run.key, partition_key=run.partition_key, run_id=run_id, log=log, config=run.config,
    )
    try:
        result = compute(run, upstream_records, context)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        text = traceback.format_exc()
        try:
            send(("error", exc, text))
        except Exception:  # noqa: BLE001 - the exception does not pickle: describe it instead
            send(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), text))
        return
    try:
        send(("ok", result))
    except Exception as exc:  # noqa: BLE001 - e.g. a generator or an open connection
        send(("error", TypeError(f"asset '{run.key}' returned a value that does not pickle: {exc}"), ""))


if __name__ == "__main__":
    # Run the imported module's copy, not this ``__main__`` one, so that pickled classes
    # (Computed, AssetTimeoutError) carry their importable name back to the parent.
    from prefect_assets.flows.compute import _child_main as main

    main()
